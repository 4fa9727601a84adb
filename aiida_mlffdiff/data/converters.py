"""Training-data formats of the MLFF engines, in one place and without AiiDA: extxyz (MACE, NequIP) and DeePMD npy.

Units throughout: positions and cells in Å, energies in eV (total, per configuration), forces in eV/Å, stress in
eV/Å³ with ASE's sign convention (``atoms.get_stress()``: positive when the cell is under tension, i.e. it would
like to shrink), DeePMD virials in eV with ``virial = -stress · volume`` (as dpdata and i-PI write them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

REF_ENERGY_KEY = 'REF_energy'
REF_FORCES_KEY = 'REF_forces'
REF_STRESS_KEY = 'REF_stress'
CONFIG_TYPE_KEY = 'config_type'

#: Smallest accepted |det(cell)| (Å³): below it the cell is treated as singular.
MIN_VOLUME_A3 = 1e-6
#: Atoms of a training configuration closer than this (Å, minimum image) are refused: no DFT label of such a pair
#: is a physical training target (the MD core refuses the same distance).
MIN_PAIR_DISTANCE_A = 0.5
#: A force component beyond this (eV/Å) is refused as a broken label (DFT forces of hot MD stay below ~20 eV/Å).
MAX_FORCE_EV_A = 1000.0


class TrainingSetError(ValueError):
    """A configuration that cannot be reference data: missing or non-finite labels, wrong shapes, no 3D cell."""


@dataclass(frozen=True)
class Reference:
    """The reference labels of one configuration: energy (eV), forces (eV/Å, ``(n, 3)``), stress (eV/Å³, 3x3)."""

    energy_eV: float
    forces_eV_A: np.ndarray
    stress_eV_A3: np.ndarray | None


def stress_3x3(value, what: str = 'stress') -> np.ndarray:
    """A stress (eV/Å³) as a 3x3 matrix from Voigt-6 (xx, yy, zz, yz, xz, xy), 9 numbers or 3x3."""
    array = np.asarray(value, dtype=float)
    if array.shape == (6,):
        xx, yy, zz, yz, xz, xy = array
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    if array.shape in ((9,), (3, 3)):
        return array.reshape(3, 3).copy()
    raise TrainingSetError(f'{what} must have 6 (Voigt), 9 or 3x3 components, got shape {array.shape}.')


def voigt_6(stress: np.ndarray) -> np.ndarray:
    """The Voigt-6 form (xx, yy, zz, yz, xz, xy) of a 3x3 stress, as ASE's calculators return it."""
    s = np.asarray(stress, dtype=float).reshape(3, 3)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def _label(index: int | None) -> str:
    return 'configuration' if index is None else f'configuration {index}'


def reference_of(
    atoms: Atoms,
    energy_key: str = REF_ENERGY_KEY,
    forces_key: str = REF_FORCES_KEY,
    stress_key: str = REF_STRESS_KEY,
    index: int | None = None,
) -> Reference:
    """Energy, forces and (optional) stress of ``atoms``, checked for shape and finiteness.

    Explicit labels win: ``atoms.info[energy_key]``, ``atoms.arrays[forces_key]`` and ``atoms.info[stress_key]``
    first, then the calculator's results (``atoms.calc.results``: 'energy', 'forces', 'stress').

    :raises TrainingSetError: missing energy or forces, wrong shapes, NaN or inf anywhere.
    """
    where = _label(index)
    results = getattr(atoms.calc, 'results', None) or {}
    energy = atoms.info.get(energy_key, results.get('energy'))
    forces = atoms.arrays.get(forces_key, results.get('forces'))
    stress = atoms.info.get(stress_key, results.get('stress'))
    if energy is None:
        raise TrainingSetError(
            f'{where} has no energy: give atoms.info[{energy_key!r}] (eV) or a calculator with an energy result.'
        )
    if forces is None:
        raise TrainingSetError(
            f'{where} has no forces: give atoms.arrays[{forces_key!r}] (eV/Å) or a calculator with forces.'
        )
    try:
        energy = float(np.asarray(energy, dtype=float).reshape(()))
    except (TypeError, ValueError) as exception:
        raise TrainingSetError(f'{where}: the energy must be one number (eV), got {energy!r}.') from exception
    if not math.isfinite(energy):
        raise TrainingSetError(f'{where}: the energy is not finite ({energy}).')
    forces = np.array(forces, dtype=float)
    if forces.shape != (len(atoms), 3):
        raise TrainingSetError(f'{where}: forces must have shape ({len(atoms)}, 3), got {forces.shape}.')
    if not np.isfinite(forces).all():
        raise TrainingSetError(f'{where}: the forces contain NaN or inf.')
    if stress is not None:
        stress = stress_3x3(stress, f'{where}: stress')
        if not np.isfinite(stress).all():
            raise TrainingSetError(f'{where}: the stress contains NaN or inf.')
    return Reference(energy, forces, stress)


def check_configuration(
    atoms: Atoms,
    index: int | None = None,
    energy_key: str = REF_ENERGY_KEY,
    forces_key: str = REF_FORCES_KEY,
    stress_key: str = REF_STRESS_KEY,
) -> Reference:
    """Check that ``atoms`` can be a training configuration and return its labels.

    Requires at least one atom of a real element, finite positions, periodic boundaries in all three directions
    with a non-singular cell, and finite energy/forces(/stress) (see :func:`reference_of`).

    :raises TrainingSetError: naming the configuration and the problem.
    """
    where = _label(index)
    if not isinstance(atoms, Atoms):
        raise TrainingSetError(f'{where} is not an ase.Atoms but {type(atoms).__name__}.')
    if len(atoms) == 0:
        raise TrainingSetError(f'{where} has no atoms.')
    if (atoms.numbers <= 0).any():
        raise TrainingSetError(f'{where} contains atoms that are not chemical elements (X / atomic number 0).')
    if not np.isfinite(atoms.positions).all():
        raise TrainingSetError(f'{where}: the positions contain NaN or inf.')
    if not atoms.pbc.all():
        raise TrainingSetError(
            f'{where} is not periodic in 3D (pbc={atoms.pbc.tolist()}): reference data for a solid needs pbc=True.'
        )
    cell = np.asarray(atoms.cell, dtype=float)
    if not np.isfinite(cell).all() or abs(np.linalg.det(cell)) < MIN_VOLUME_A3:
        raise TrainingSetError(f'{where} has a singular or non-finite cell: a periodic 3D cell is required.')
    reference = reference_of(atoms, energy_key, forces_key, stress_key, index)
    forces = np.asarray(reference.forces_eV_A, dtype=float)
    if np.abs(forces).max(initial=0.0) > MAX_FORCE_EV_A:
        atom = int(np.argmax(np.abs(forces).max(axis=1)))
        raise TrainingSetError(
            f'{where}: atom {atom} has a force component of {np.abs(forces[atom]).max():.3g} eV/Å (> '
            f'{MAX_FORCE_EV_A:g} eV/Å): not a physical label; check the units and the DFT run.'
        )
    if len(atoms) > 1:
        distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e6
        i, j = np.unravel_index(np.argmin(distances), distances.shape)
        if distances[i, j] < MIN_PAIR_DISTANCE_A:
            raise TrainingSetError(
                f'{where}: atoms {i} and {j} are {distances[i, j]:.3f} Å apart (< {MIN_PAIR_DISTANCE_A} Å): '
                'overlapping atoms are not a training configuration.'
            )
    return reference


def labelled_atoms(atoms: Atoms, reference: Reference) -> Atoms:
    """A clean copy of ``atoms`` (positions, numbers, cell, pbc, config_type) carrying ``reference``.

    The copy has a :class:`SinglePointCalculator` (energy, forces, stress in Voigt-6 as ASE expects) and the same
    labels as ``info['REF_energy']``, ``arrays['REF_forces']`` and ``info['REF_stress']`` (9 numbers).
    """
    clean = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    config_type = atoms.info.get(CONFIG_TYPE_KEY)
    if config_type is not None:
        clean.info[CONFIG_TYPE_KEY] = str(config_type)
    clean.info[REF_ENERGY_KEY] = reference.energy_eV
    clean.arrays[REF_FORCES_KEY] = reference.forces_eV_A.copy()
    results = {'energy': reference.energy_eV, 'forces': reference.forces_eV_A.copy()}
    if reference.stress_eV_A3 is not None:
        clean.info[REF_STRESS_KEY] = reference.stress_eV_A3.reshape(9).copy()
        results['stress'] = voigt_6(reference.stress_eV_A3)
    clean.calc = SinglePointCalculator(clean, **results)
    return clean


def _number(value: float) -> str:
    """Shortest text that reads back as exactly the same float."""
    return repr(float(value))


def extxyz_text(
    atoms_list: Iterable[Atoms],
    energy_key: str = REF_ENERGY_KEY,
    forces_key: str = REF_FORCES_KEY,
    stress_key: str = REF_STRESS_KEY,
) -> str:
    """Extended XYZ text of labelled configurations, every float written to full precision (round-trip exact).

    ASE's own writer rounds per-atom columns to 8 decimals; this writes the same format (``Lattice``,
    ``Properties=species:S:1:pos:R:3:<forces_key>:R:3``, ``pbc``, energy/stress/config_type in the comment line)
    with shortest round-trip floats, so that ``ase.io.read`` gives back the exact numbers. The text is canonical:
    the same configurations always give the same bytes.
    Labels are read as by :func:`reference_of` (REF_ keys first, then the calculator results) and written under
    ``energy_key`` (eV), ``forces_key`` (eV/Å) and ``stress_key`` (eV/Å³, 9 numbers).
    """
    from ase.io.extxyz import key_val_dict_to_str

    for key in (energy_key, forces_key, stress_key):
        if not key or any(c.isspace() or c in '="\',:' for c in key):
            raise TrainingSetError(f'invalid extxyz key {key!r}: use letters, digits and underscores.')
    lines = []
    for index, atoms in enumerate(atoms_list):
        reference = check_configuration(atoms, index)
        lattice = ' '.join(_number(x) for x in np.asarray(atoms.cell, dtype=float).reshape(9))
        info: dict = {energy_key: reference.energy_eV}
        if reference.stress_eV_A3 is not None:
            # ASE reads 'stress'/'virial' as Fortran-ordered 3x3; any other key as a plain vector of 9 numbers
            info[stress_key] = (
                reference.stress_eV_A3 if stress_key in ('stress', 'virial') else reference.stress_eV_A3.reshape(9)
            )
        config_type = atoms.info.get(CONFIG_TYPE_KEY)
        if config_type is not None:
            info[CONFIG_TYPE_KEY] = str(config_type)
        info['pbc'] = np.array([True, True, True])
        properties = f'species:S:1:pos:R:3:{forces_key}:R:3'
        lines.append(str(len(atoms)))
        lines.append(f'Lattice="{lattice}" Properties={properties} {key_val_dict_to_str(info)}')
        for symbol, position, force in zip(
            atoms.get_chemical_symbols(), atoms.positions, reference.forces_eV_A, strict=True
        ):
            lines.append(' '.join([symbol, *(_number(x) for x in position), *(_number(f) for f in force)]))
    if not lines:
        raise TrainingSetError('no configuration given.')
    return '\n'.join(lines) + '\n'


def write_extxyz(
    atoms_list: Iterable[Atoms],
    path: str | Path,
    energy_key: str = REF_ENERGY_KEY,
    forces_key: str = REF_FORCES_KEY,
    stress_key: str = REF_STRESS_KEY,
) -> Path:
    """Write labelled configurations as extxyz for MACE or NequIP (keys configurable; see :func:`extxyz_text`).

    Labels are taken from ``info``/``arrays`` under the REF_ keys or from the calculator results, and written
    under ``energy_key`` (eV), ``forces_key`` (eV/Å) and ``stress_key`` (eV/Å³, 9 numbers).
    """
    path = Path(path)
    path.write_text(extxyz_text(atoms_list, energy_key, forces_key, stress_key), encoding='utf-8')
    return path


def read_extxyz(
    path_or_handle,
    energy_key: str = REF_ENERGY_KEY,
    forces_key: str = REF_FORCES_KEY,
    stress_key: str = REF_STRESS_KEY,
) -> list[Atoms]:
    """Read an extxyz file (ours or any ASE one) into checked, labelled Atoms (see :func:`labelled_atoms`)."""
    from ase.io import read

    try:
        frames = read(path_or_handle, index=':', format='extxyz')
    except Exception as exception:
        raise TrainingSetError(f'cannot read {path_or_handle} as extxyz: {exception}') from exception
    if isinstance(frames, Atoms):
        frames = [frames]
    return [
        labelled_atoms(atoms, check_configuration(atoms, i, energy_key, forces_key, stress_key))
        for i, atoms in enumerate(frames)
    ]


def _type_indices(atoms: Atoms, type_map: Sequence[str], index: int) -> np.ndarray:
    lookup = {symbol: i for i, symbol in enumerate(type_map)}
    missing = sorted(set(atoms.get_chemical_symbols()) - set(lookup))
    if missing:
        raise TrainingSetError(
            f'configuration {index} contains {", ".join(missing)}, not in the DeePMD type_map '
            f'[{", ".join(type_map)}]: add them to type_map.'
        )
    return np.array([lookup[symbol] for symbol in atoms.get_chemical_symbols()], dtype=int)


def _check_type_map(type_map: Sequence[str]) -> list[str]:
    type_map = [str(symbol) for symbol in type_map]
    if not type_map:
        raise TrainingSetError('type_map is empty: list the chemical symbols, e.g. ["Li", "P", "S", "Cl"].')
    unknown = [s for s in type_map if s not in chemical_symbols[1:]]
    if unknown:
        raise TrainingSetError(f'type_map contains {", ".join(unknown)}, which are not chemical symbols.')
    if len(set(type_map)) != len(type_map):
        raise TrainingSetError(f'type_map has repeated symbols: {type_map}.')
    return type_map


def system_name(counts: Sequence[int], type_map: Sequence[str]) -> str:
    """Directory name of a DeePMD system: its formula in type_map order, e.g. ``Li24P4S20Cl4``."""
    return ''.join(f'{symbol}{count}' for symbol, count in zip(type_map, counts, strict=True) if count)


def write_deepmd(atoms_list: Iterable[Atoms], directory: str | Path, type_map: Sequence[str]) -> list[Path]:
    """Write labelled configurations as DeePMD npy systems, one per composition; return the system directories.

    Each system directory (named by its formula in ``type_map`` order) holds ``type.raw`` (type index of each
    atom), ``type_map.raw`` and ``set.000/`` with ``coord.npy`` (frames, atoms·3; Å), ``box.npy`` (frames, 9; Å),
    ``energy.npy`` (frames; eV), ``force.npy`` (frames, atoms·3; eV/Å) and, when every frame has a stress,
    ``virial.npy`` (frames, 9; eV) with ``virial = -stress · volume``. Atoms are reordered by type index (stable
    order within a type), the same way for coordinates and forces of every frame of a system.

    :raises TrainingSetError: a species missing from ``type_map``, bad labels, or an existing system directory.
    """
    type_map = _check_type_map(type_map)
    directory = Path(directory)
    systems: dict[tuple[int, ...], list[tuple[np.ndarray, Atoms, Reference]]] = {}
    for index, atoms in enumerate(atoms_list):
        reference = check_configuration(atoms, index)
        types = _type_indices(atoms, type_map, index)
        counts = tuple(int(c) for c in np.bincount(types, minlength=len(type_map)))
        systems.setdefault(counts, []).append((types, atoms, reference))
    if not systems:
        raise TrainingSetError('no configuration given.')
    written = []
    for counts, frames in systems.items():
        system = directory / system_name(counts, type_map)
        if system.exists():
            raise TrainingSetError(f'{system} exists already: write DeePMD systems into an empty directory.')
        (system / 'set.000').mkdir(parents=True)
        coords, boxes, energies, forces, virials = [], [], [], [], []
        for types, atoms, reference in frames:
            order = np.argsort(types, kind='stable')
            coords.append(atoms.positions[order].reshape(-1))
            boxes.append(np.asarray(atoms.cell, dtype=float).reshape(9))
            energies.append(reference.energy_eV)
            forces.append(reference.forces_eV_A[order].reshape(-1))
            if reference.stress_eV_A3 is not None:
                virials.append((-reference.stress_eV_A3 * atoms.get_volume()).reshape(9))
        sorted_types = np.sort(frames[0][0], kind='stable')
        (system / 'type.raw').write_text(''.join(f'{t}\n' for t in sorted_types))
        (system / 'type_map.raw').write_text(''.join(f'{s}\n' for s in type_map))
        np.save(system / 'set.000' / 'coord.npy', np.array(coords))
        np.save(system / 'set.000' / 'box.npy', np.array(boxes))
        np.save(system / 'set.000' / 'energy.npy', np.array(energies))
        np.save(system / 'set.000' / 'force.npy', np.array(forces))
        if len(virials) == len(frames):
            np.save(system / 'set.000' / 'virial.npy', np.array(virials))
        written.append(system)
    return written


def _read_deepmd_system(system: Path, type_map: list[str]) -> list[Atoms]:
    types = np.loadtxt(system / 'type.raw', dtype=int, ndmin=1)
    if (system / 'type_map.raw').exists():
        stored = (system / 'type_map.raw').read_text().split()
        if stored != type_map:
            raise TrainingSetError(f'{system} was written with type_map {stored}, not {type_map}.')
    if types.min() < 0 or types.max() >= len(type_map):
        raise TrainingSetError(f'{system}/type.raw has type indices outside type_map {type_map}.')
    symbols = [type_map[t] for t in types]
    frames = []
    for folder in sorted(system.glob('set.*')):
        coords = np.load(folder / 'coord.npy').reshape(-1, len(types), 3)
        boxes = np.load(folder / 'box.npy').reshape(-1, 3, 3)
        energies = np.load(folder / 'energy.npy').reshape(-1)
        forces = np.load(folder / 'force.npy').reshape(-1, len(types), 3)
        virials = np.load(folder / 'virial.npy').reshape(-1, 3, 3) if (folder / 'virial.npy').exists() else None
        for i in range(coords.shape[0]):
            atoms = Atoms(symbols=symbols, positions=coords[i], cell=boxes[i], pbc=True)
            stress = None if virials is None else -virials[i] / atoms.get_volume()
            frames.append(labelled_atoms(atoms, Reference(float(energies[i]), forces[i], stress)))
    return frames


def read_deepmd(directory: str | Path, type_map: Sequence[str]) -> list[Atoms]:
    """Read DeePMD npy system(s) back into labelled Atoms (stress in eV/Å³ from ``-virial / volume``).

    ``directory`` is one system (it holds ``type.raw``) or a folder of systems (read in sorted order).
    """
    type_map = _check_type_map(type_map)
    directory = Path(directory)
    if (directory / 'type.raw').exists():
        return _read_deepmd_system(directory, type_map)
    systems = sorted(path.parent for path in directory.glob('*/type.raw'))
    if not systems:
        raise TrainingSetError(f'{directory} holds no DeePMD system (no type.raw).')
    return [atoms for system in systems for atoms in _read_deepmd_system(system, type_map)]
