"""Readers of a LAMMPS replica's retrieved files (dump, thermo, stdout) into the arrays the ASE driver writes.

Each replica's retrieved folder (a ``lammps.raw`` job written by :mod:`aiida_mlffdiff.calculations.lammps_script`)
holds the production dump (unwrapped positions Å, velocities Å/ps, forces eV/Å of all atoms every sampling
interval), the production and equilibration thermo files and LAMMPS' stdout. :func:`replica_from_files` turns them
into one replica's record (``positions`` of the mobile ions, ``com``, ``status``, ...); the calcfunction
:func:`~aiida_mlffdiff.workchains.lammps_ensemble.msd_from_lammps_dumps` stacks the replicas and hands them to the
MD ensemble parser's shared helpers, so that both engines give the same outputs.

Blow-ups are found with the per-sample check every engine uses (:func:`aiida_mlffdiff.drivers.md_core.check`:
non-finite positions/energy/forces → ``nan``, two atoms closer than 0.5 Å → ``atoms_too_close``, T above 3 × the
target → ``temperature_runaway``), applied to every production frame rebuilt as ASE atoms with the dumped forces,
velocities and the potential energy of the thermo file; the equilibration is checked on its thermo (non-finite
energy or T, runaway). A replica whose job failed or stopped early without such a problem is ``error`` with the
LAMMPS error line.
"""

from __future__ import annotations

import re

import numpy as np
from aiida import orm

from ..calculations.lammps_script import DUMP_COLUMNS, DUMP_FILE, EQUILIBRATION_FILE, THERMO_FILE
from ..drivers.md_core import RUNAWAY_FACTOR, check, replica_record

__all__ = (
    'LAMMPS_STDOUT',
    'file_content',
    'lammps_run_stats',
    'read_lammps_dump',
    'read_thermo_file',
    'replica_from_files',
)

LAMMPS_STDOUT = 'lammps.out'
_PEAK_MEMORY = re.compile(r'Maximum resident set size:\s+(\S+)\s+Mbyte')
_LOOP = re.compile(r'Loop time of\s+(\S+)\s+on\s+(\d+)\s+procs\s+for\s+(\d+)\s+steps\s+with\s+(\d+)\s+atoms')
_VERSION = re.compile(r'^LAMMPS \((.+)\)', re.MULTILINE)


def read_lammps_dump(text: str, columns: tuple[str, ...] = DUMP_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """Steps (n_frames,) and per-atom values (n_frames, n_atoms, len(columns)) of a LAMMPS text dump, sorted by id.

    A frame cut short (the run died while writing) is dropped; ``nan`` values are kept as NaN.

    :raises ValueError: if the dump's columns differ from ``columns``.
    """
    lines = text.splitlines()
    steps, frames = [], []
    i = 0
    while i < len(lines):
        if not lines[i].startswith('ITEM: TIMESTEP'):
            i += 1
            continue
        try:
            step = int(lines[i + 1])
            n_atoms = int(lines[i + 3])
            header = lines[i + 8]
        except (IndexError, ValueError):
            break
        names = header.split()[2:]
        if tuple(names) != tuple(columns):
            raise ValueError(f'dump columns {names} differ from the expected {list(columns)}.')
        block = lines[i + 9 : i + 9 + n_atoms]
        if len(block) < n_atoms:
            break
        try:
            values = np.array([row.split() for row in block], dtype=float)
        except ValueError:
            break
        if values.shape != (n_atoms, len(columns)):
            break
        steps.append(step)
        frames.append(values[np.argsort(values[:, 0])])
        i += 9 + n_atoms
    if not frames:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0, len(columns)))
    return np.array(steps, dtype=np.int64), np.stack(frames)


def read_thermo_file(text: str | None) -> np.ndarray:
    """Rows ``step, T (K), pe (eV), ke (eV), conserved energy (eV)`` of a ``fix print`` thermo file."""
    rows = []
    for line in (text or '').splitlines():
        parts = line.split()
        if not parts or parts[0].startswith('#'):
            continue
        try:
            rows.append([float(value) for value in parts[:5]])
        except ValueError:
            continue
    return np.array(rows, dtype=float).reshape(-1, 5)


def lammps_run_stats(stdout: str | None) -> dict:
    """LAMMPS version, the first ``ERROR`` line, the summed loop wall time (s), steps and atoms of stdout, and the
    process's peak resident memory (MB, from ``info memory``; None without it)."""
    stdout = stdout or ''
    loops = [(float(m[0]), int(m[1]), int(m[2]), int(m[3])) for m in _LOOP.findall(stdout)]
    version = _VERSION.search(stdout)
    peak = _PEAK_MEMORY.findall(stdout)
    error = next((line.strip() for line in stdout.splitlines() if line.lstrip().startswith('ERROR')), '')
    return {
        'version': version.group(1) if version else '',
        'error': error,
        'loop_s': sum(loop[0] for loop in loops),
        'steps': sum(loop[2] for loop in loops),
        'atoms': loops[0][3] if loops else 0,
        'processes': loops[0][1] if loops else 0,
        'peak_rss_MB': float(peak[-1]) if peak else None,
    }


def file_content(folder: orm.FolderData | None, name: str) -> str | None:
    if folder is None or name not in folder.base.repository.list_object_names():
        return None
    return folder.base.repository.get_object_content(name)


def replica_from_files(files: dict[str, str | None], atoms, parameters: dict, seed: int, job_message: str = '') -> dict:
    """One replica's arrays and status from its files' contents (keys: the dump, thermo files, stdout names).

    :param atoms: the MD cell (ASE), in the atom order of the LAMMPS data file.
    :param parameters: validated MD parameters (``md_parameters``).
    :param job_message: why the LAMMPS job failed ('' when it finished).
    """
    from ase import units
    from ase.calculators.singlepoint import SinglePointCalculator

    target = float(parameters['temperature_K'])
    timestep = float(parameters['timestep_fs'])
    stride = round(float(parameters['sampling_interval_fs']) / timestep)
    sample_ps = stride * timestep / 1000.0
    n_frames = round(float(parameters['production_ps']) / sample_ps) + 1
    symbols = np.array(atoms.get_chemical_symbols())
    mobile = np.flatnonzero(symbols == parameters['mobile_species'])
    framework = np.flatnonzero(symbols != parameters['mobile_species'])
    masses = atoms.get_masses()
    weights = masses[framework] / masses[framework].sum()
    positions = np.full((n_frames, mobile.size, 3), np.nan)
    com = np.full((n_frames, 3), np.nan)
    stats = lammps_run_stats(files.get(LAMMPS_STDOUT))
    status, message, done = 'ok', '', 0

    equilibration = read_thermo_file(files.get(EQUILIBRATION_FILE))
    for step, temperature, pe, _, _ in equilibration:
        if not (np.isfinite(temperature) and np.isfinite(pe)):
            status, message = 'nan', f'equilibration step {step:.0f}: non-finite energy or temperature'
        elif temperature > RUNAWAY_FACTOR * target:
            status = 'temperature_runaway'
            message = f'equilibration step {step:.0f}: T = {temperature:.0f} K > {RUNAWAY_FACTOR:g} × {target:g} K'
        if status != 'ok':
            break

    thermo = read_thermo_file(files.get(THERMO_FILE))
    energy_of = {round(row[0]): row for row in thermo}
    try:
        steps, values = read_lammps_dump(files.get(DUMP_FILE) or '')
    except ValueError as exception:
        steps, values = np.zeros(0, dtype=np.int64), None
        status, message = 'error', str(exception)
    temperatures, energies = [], []
    com0 = None
    for frame in range(n_frames if status == 'ok' else 0):
        index = np.flatnonzero(steps == frame * stride)
        if index.size == 0 or frame * stride not in energy_of:
            break
        values_frame = values[index[0]]
        if values_frame.shape[0] != len(atoms):
            status, message = 'error', f'the dump holds {values_frame.shape[0]} atoms, the cell {len(atoms)}'
            break
        row = energy_of[frame * stride]
        snapshot = atoms.copy()
        snapshot.positions = values_frame[:, 2:5]
        snapshot.set_velocities(values_frame[:, 5:8] / (1000.0 * units.fs))
        snapshot.calc = SinglePointCalculator(snapshot, energy=float(row[2]), forces=values_frame[:, 8:11])
        problem, detail = check(snapshot, target)
        if problem != 'ok':
            status, message = problem, f'production frame {frame}: {detail}'
            break
        positions[frame] = snapshot.positions[mobile]
        centre = weights @ snapshot.positions[framework]
        com0 = centre if com0 is None else com0
        com[frame] = centre - com0
        temperatures.append(float(row[1]))
        energies.append(float(row[4]) / len(atoms))
        done = frame + 1
    if status == 'ok' and done < n_frames:
        status = 'error'
        reason = stats['error'] or job_message or 'no error message'
        message = f'LAMMPS stopped after {done} of {n_frames} production frames: {reason}'
    record = replica_record(seed, status, message, positions, com, done, temperatures, energies, sample_ps)
    return {**record, 'lammps': stats}
