"""Write the LAMMPS inputs of one MD replica driven by a DeePMD model (``pair_style deepmd``); pure functions.

The script runs in ``units metal`` (Å, ps, eV, K) with ``atom_style atomic``:

1. ``read_data`` of the MD cell, LAMMPS atom types 1, 2, ... = the model's species in the model's order
   (:func:`type_order`); ``pair_coeff * * <symbols>`` names them, so DeePMD maps each LAMMPS type to its own
   type map by name, whatever order the model was trained with.
2. Initial velocities: ``velocity all create T seed dist gaussian mom yes rot no`` (Maxwell–Boltzmann at the
   target temperature from the replica's seed, no net momentum).
3. Thermostat (``coupling`` as in :class:`~aiida_mlffdiff.calculations.md_ensemble.MdEnsembleCalculation`):

   - ``langevin``: ``fix langevin`` (damping time 1/γ, ``zero yes``: no net random force) + ``fix nve``;
   - ``nose_hoover``: ``fix nvt`` (damping time = coupling, chain of 3, the LAMMPS default);
   - ``bussi``: ``fix temp/csvr`` (τ = coupling) + ``fix nve``.

4. Equilibration (``equilibration_ps``), its thermo every sampling interval in :data:`EQUILIBRATION_FILE`.
5. ``reset_timestep 0``, then production (``production_ps``): every sampling interval a frame of all atoms in
   :data:`DUMP_FILE` (``id type xu yu zu vx vy vz fx fy fz``: unwrapped positions Å, velocities Å/ps, forces
   eV/Å, sorted by id) and a thermo line in :data:`THERMO_FILE` (step, T K, potential, kinetic and conserved
   energy eV — ``econserve`` includes the energy the thermostat exchanged).

All atoms are dumped (not only the mobile ones): the framework's centre of mass, the blow-up checks (atoms too
close) and the forces need them, and a frame of a few hundred atoms is small next to the model call.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

__all__ = (
    'DATA_FILE',
    'DUMP_COLUMNS',
    'DUMP_FILE',
    'DUMP_FORMAT',
    'EQUILIBRATION_FILE',
    'MODEL_FILE',
    'THERMO_FILE',
    'lammps_data',
    'lammps_script',
    'thermostat_commands',
    'type_order',
)

DATA_FILE = 'structure.data'
MODEL_FILE = 'model.pth'
DUMP_FILE = 'production.dump'
THERMO_FILE = 'production_thermo.dat'
EQUILIBRATION_FILE = 'equilibration_thermo.dat'
DUMP_COLUMNS = ('id', 'type', 'xu', 'yu', 'zu', 'vx', 'vy', 'vz', 'fx', 'fy', 'fz')
#: Positions with 10 significant digits (MSD), velocities and forces with 6 (only checked): a smaller dump.
DUMP_FORMAT = '%d %d %.10g %.10g %.10g %.6g %.6g %.6g %.6g %.6g %.6g'
#: LAMMPS' largest random seed (a positive 32-bit int); replica seeds are mapped into [1, MAX_SEED].
MAX_SEED = 900_000_000


def type_order(model_species: Sequence[str], symbols: Sequence[str]) -> list[str]:
    """Chemical symbols of LAMMPS atom types 1, 2, ...: the model's species, in the model's order.

    :raises ValueError: if the structure holds a species the model does not cover.
    """
    missing = sorted(set(symbols) - set(model_species))
    if missing:
        raise ValueError(f'the model does not cover {", ".join(missing)}.')
    return list(model_species)


def lammps_seed(seed: int, offset: int = 0) -> int:
    """A valid LAMMPS seed (1 … :data:`MAX_SEED`) from a replica's non-negative seed; ``offset`` separates streams."""
    return (int(seed) * 2 + offset) % MAX_SEED + 1


def lammps_data(atoms, types: Sequence[str]) -> str:
    """The ``read_data`` file (metal units, atomic style, with masses) of an ASE ``atoms`` object.

    A cell that is not lower-triangular is rotated into LAMMPS' convention (ASE's writer); MSDs do not depend
    on the orientation.
    """
    from ase.io.lammpsdata import write_lammps_data

    handle = io.StringIO()
    write_lammps_data(handle, atoms, specorder=list(types), masses=True, units='metal', atom_style='atomic')
    return handle.getvalue()


def thermostat_commands(thermostat: str, temperature_K: float, coupling: float, seed: int) -> list[str]:
    """The fixes of one thermostat; ``coupling``: Langevin friction (1/fs) or the time constant (fs)."""
    if thermostat == 'langevin':
        damp_ps = 1.0 / (coupling * 1000.0)
        return [
            f'fix thermostat all langevin {temperature_K:.10g} {temperature_K:.10g} {damp_ps:.10g} '
            f'{lammps_seed(seed, 1)} zero yes',
            'fix integrate all nve',
        ]
    if thermostat == 'bussi':
        return [
            'fix integrate all nve',
            f'fix thermostat all temp/csvr {temperature_K:.10g} {temperature_K:.10g} {coupling / 1000.0:.10g} '
            f'{lammps_seed(seed, 1)}',
        ]
    if thermostat == 'nose_hoover':
        return [f'fix thermostat all nvt temp {temperature_K:.10g} {temperature_K:.10g} {coupling / 1000.0:.10g}']
    raise ValueError(f'unknown thermostat {thermostat!r}')


def lammps_script(parameters: dict, types: Sequence[str], seed: int) -> str:
    """The LAMMPS input of one replica.

    :param parameters: validated MD parameters (``md_parameters``: ``temperature_K``, ``timestep_fs``,
        ``equilibration_ps``, ``production_ps``, ``sampling_interval_fs``, ``thermostat``, ``coupling``).
    :param types: symbols of LAMMPS types 1, 2, ... (:func:`type_order`).
    :param seed: the replica's seed (velocities and thermostat noise).
    """
    temperature = float(parameters['temperature_K'])
    timestep_fs = float(parameters['timestep_fs'])
    stride = round(float(parameters['sampling_interval_fs']) / timestep_fs)
    sample_ps = stride * timestep_fs / 1000.0
    n_equilibration = round(float(parameters['equilibration_ps']) / sample_ps) * stride
    n_production = round(float(parameters['production_ps']) / sample_ps) * stride
    lines = [
        f'# aiida-mlffdiff: one MD replica, seed {seed}, DeePMD model {MODEL_FILE}',
        'units metal',
        'atom_style atomic',
        'boundary p p p',
        f'read_data {DATA_FILE}',
        f'pair_style deepmd {MODEL_FILE}',
        f'pair_coeff * * {" ".join(types)}',
        'neighbor 2.0 bin',
        'neigh_modify every 1 delay 0 check yes',
        f'timestep {timestep_fs / 1000.0:.10g}',
        f'velocity all create {temperature:.10g} {lammps_seed(seed)} dist gaussian mom yes rot no',
        *thermostat_commands(parameters['thermostat'], temperature, float(parameters['coupling']), seed),
        'thermo_style custom step temp pe ke etotal econserve press',
        'thermo_modify norm no flush yes',
        f'thermo {stride}',
        'variable step equal step',
        'variable temp equal temp',
        'variable pe equal pe',
        'variable ke equal ke',
        'variable econs equal econserve',
    ]
    if n_equilibration:
        lines += [
            f'fix equilibration all print {stride} "${{step}} ${{temp}} ${{pe}} ${{ke}} ${{econs}}" '
            f'file {EQUILIBRATION_FILE} screen no title "# step temperature_K pe_eV ke_eV conserved_eV"',
            f'run {n_equilibration}',
            'unfix equilibration',
        ]
    lines += [
        'reset_timestep 0',
        f'dump frames all custom {stride} {DUMP_FILE} {" ".join(DUMP_COLUMNS)}',
        f'dump_modify frames sort id format line "{DUMP_FORMAT}"',
        f'fix production all print {stride} "${{step}} ${{temp}} ${{pe}} ${{ke}} ${{econs}}" '
        f'file {THERMO_FILE} screen no title "# step temperature_K pe_eV ke_eV conserved_eV"',
        f'run {n_production}',
        'info memory',  # the process's peak resident memory, for the cost record
        '',
    ]
    return '\n'.join(lines)
