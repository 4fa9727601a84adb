"""Force constants from displaced supercells: aiida-phonopy's data types, phonopy/phono3py with symfc, phonons.

The displacements are random (every atom of the supercell moved by ``distance_A`` in a random direction, seeded),
each snapshot with its negative (±u): F(u) − F(−u) carries the odd (2nd-order) part, F(u) + F(−u) the even
(3rd-order) part, and symfc fits Φ2 and Φ3 with the space-group symmetry and the acoustic sum rule built into its
basis. One pair of 96-atom supercells fits both orders of Li2S; systematic displacements would need 3 supercells for
Φ2 and 258 for Φ3. Model and DFT forces are taken on the very same supercells (one ``PreProcessData``), so their
force constants differ only through the forces.

Data types: aiida-phonopy's ``PreProcessData`` (unit cell, supercell matrix, displacement dataset),
``PhonopyData`` (with the forces) and ``ForceConstantsData`` (Φ2); Φ3 has no aiida-phonopy type and is an
``ArrayData`` (compact, eV/Å³). Pure functions first, each with its thin calcfunction.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from aiida.plugins import DataFactory

from ..analysis.force_constants import (
    acoustic_sum_rule_residual,
    pair_distances_A,
    parity_metrics,
    shell_errors,
    spectrum_metrics,
    symmetry_residual,
)
from ..analysis.locality import inscribed_radius_A
from ..data.training_set import TrainingSet

__all__ = (
    'DEFAULT_PARAMETERS',
    'DISTANCE_RANGE_A',
    'attach_forces',
    'compare_force_constants',
    'compute_force_constants',
    'displaced_supercells',
    'force_constants_parameters',
    'minimum_width_A',
    'structure_problem',
)

#: Displacement, fitting and phonon settings (units in the names).
DEFAULT_PARAMETERS: dict[str, Any] = {
    'orders': [2, 3],  # 2: Φ2 only; [2, 3]: Φ2 and Φ3 from the same supercells
    'distance_A': 0.03,  # displacement of every atom in each snapshot (Å)
    'number_of_snapshots': 1,  # random snapshots, each with its negative: 2 × this many supercells
    'random_seed': 1,
    'fc3_cutoff_A': None,  # pair cutoff of Φ3 (Å); None: the whole supercell
    'symprec': 1e-5,
    'band_points': 51,  # q-points per segment of the seekpath band path
    'mesh': [8, 8, 8],  # q-mesh of the DOS
}
#: Sane displacement amplitudes (Å): below, DFT noise dominates the force differences; above, the Taylor expansion
#: to third order breaks down (phonopy uses 0.01, phono3py 0.03 by default).
DISTANCE_RANGE_A = (0.005, 0.2)


def force_constants_parameters(parameters: dict | None = None) -> dict[str, Any]:
    """``DEFAULT_PARAMETERS`` updated with ``parameters``, checked.

    :raises ValueError: an unknown key, orders other than [2] or [2, 3], a displacement outside
        :data:`DISTANCE_RANGE_A`, fewer than one snapshot, a non-positive cutoff, a bad mesh.
    """
    given = dict(parameters or {})
    unknown = sorted(set(given) - set(DEFAULT_PARAMETERS))
    if unknown:
        raise ValueError(f'unknown force-constant parameters {unknown}; known: {", ".join(DEFAULT_PARAMETERS)}.')
    merged = {**DEFAULT_PARAMETERS, **given}
    orders = sorted(int(order) for order in merged['orders'])
    if orders not in ([2], [2, 3]):
        raise ValueError(f'orders must be [2] or [2, 3], got {merged["orders"]}.')
    merged['orders'] = orders
    distance = merged['distance_A']
    low, high = DISTANCE_RANGE_A
    if isinstance(distance, bool) or not isinstance(distance, int | float) or not low <= distance <= high:
        raise ValueError(
            f'distance_A must be a displacement between {low} and {high} Å, got {distance!r}: smaller ones drown in '
            'the noise of the forces, larger ones leave the range of a third-order expansion.'
        )
    snapshots = merged['number_of_snapshots']
    if isinstance(snapshots, bool) or not isinstance(snapshots, int) or snapshots < 1:
        raise ValueError(f'number_of_snapshots must be a positive integer, got {snapshots!r}.')
    cutoff = merged['fc3_cutoff_A']
    if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, int | float) or cutoff <= 0):
        raise ValueError(f'fc3_cutoff_A must be a positive distance (Å) or None, got {cutoff!r}.')
    mesh = merged['mesh']
    if len(mesh) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in mesh):
        raise ValueError(f'mesh must be three positive integers, got {mesh!r}.')
    if not isinstance(merged['band_points'], int) or merged['band_points'] < 2:
        raise ValueError(f'band_points must be an integer ≥ 2, got {merged["band_points"]!r}.')
    return merged


def minimum_width_A(cell: np.ndarray) -> float:
    """The smallest distance between opposite faces of a cell (Å): twice its inscribed radius."""
    return 2 * inscribed_radius_A(cell)


def supercell_matrix_array(matrix: list) -> np.ndarray:
    """A supercell matrix from three repetitions or a 3×3 integer matrix.

    :raises ValueError: anything else, or a singular matrix.
    """
    array = np.asarray(matrix)
    if array.shape == (3,):
        array = np.diag(array)
    if array.shape != (3, 3) or not np.all(np.equal(np.mod(array, 1), 0)):
        raise ValueError(f'supercell_matrix must be three repetitions or a 3×3 integer matrix, got {matrix!r}.')
    array = array.astype(int)
    if round(abs(np.linalg.det(array))) < 1:
        raise ValueError(f'supercell_matrix {array.tolist()} is singular.')
    return array


def structure_problem(structure: orm.StructureData) -> str | None:
    """Why a structure cannot give force constants (partial occupancies or vacancies, not periodic), or ``None``."""
    if structure.is_alloy or structure.has_vacancies:
        partial = [kind.name for kind in structure.kinds if len(kind.symbols) > 1 or sum(kind.weights) < 1 - 1e-6]
        return (
            f'the structure has partially occupied sites (kinds {", ".join(partial)}): force constants need an '
            'ordered cell; choose an ordering (e.g. the lowest-Ewald-energy one) first.'
        )
    if not all(structure.pbc):
        return f'the structure must be periodic along all three cell vectors, got pbc={tuple(structure.pbc)}.'
    return None


def _phonopy_atoms(structure: orm.StructureData):
    from phonopy.structure.atoms import PhonopyAtoms

    atoms = structure.get_ase()
    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(), cell=atoms.cell[:], scaled_positions=atoms.get_scaled_positions()
    )


def displaced_supercells(preprocess) -> orm.TrajectoryData:
    """The displaced supercells of a ``PreProcessData`` as one TrajectoryData (positions and cells in Å), in the
    order of its displacement dataset: the input of a model's ``PredictCalculation``."""
    supercells = preprocess.get_phonopy_instance().supercells_with_displacements
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(
        symbols=list(supercells[0].symbols),
        positions=np.array([cell.positions for cell in supercells]),
        cells=np.array([cell.cell for cell in supercells]),
    )
    return trajectory


@calcfunction
def supercells_trajectory(preprocess_data) -> orm.TrajectoryData:
    """Calcfunction of :func:`displaced_supercells`."""
    return displaced_supercells(preprocess_data)


def forces_array(preprocess, forces: orm.Data) -> np.ndarray:
    """The forces (eV/Å) on the displaced supercells, (n_supercells, n_atoms, 3), from the model's predictions
    (``ArrayData`` with ``forces_eV_A``) or the DFT labels (a ``TrainingSet`` of the supercells in label order).

    :raises ValueError: a count, atom order or position that does not match the displaced supercells.
    """
    supercells = preprocess.get_phonopy_instance().supercells_with_displacements
    if isinstance(forces, TrainingSet):
        atoms = forces.get_atoms()
        if len(atoms) != len(supercells):
            raise ValueError(f'{len(atoms)} labelled supercells for {len(supercells)} displaced ones.')
        for index, (labelled, cell) in enumerate(zip(atoms, supercells, strict=True)):
            if labelled.get_chemical_symbols() != list(cell.symbols) or not np.allclose(
                labelled.positions, cell.positions, atol=1e-4
            ):
                raise ValueError(f'labelled configuration {index} is not displaced supercell {index + 1}.')
        array = np.array([labelled.get_forces() for labelled in atoms])
    else:
        array = np.asarray(forces.get_array('forces_eV_A'), dtype=float)
    expected = (len(supercells), len(supercells[0]), 3)
    if array.shape != expected:
        raise ValueError(f'forces of shape {array.shape}, expected {expected}.')
    if not np.isfinite(array).all():
        raise ValueError('non-finite forces.')
    return array


@calcfunction
def attach_forces(preprocess_data, forces: orm.Data):
    """A ``PhonopyData`` (aiida-phonopy): the displaced supercells of ``preprocess_data`` with their forces (eV/Å)
    from a model's predictions or a TrainingSet of DFT labels (:func:`forces_array`)."""
    data = DataFactory('phonopy.phonopy')(preprocess_data=preprocess_data)
    data.set_forces(sets_of_forces=forces_array(preprocess_data, forces))
    return data


def _supercell_operations(phonon) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian rotations and atom permutations of the supercell's space group (phonopy's symmetry search)."""
    from phonopy.structure.symmetry import Symmetry

    supercell = phonon.supercell
    symmetry = Symmetry(supercell, symprec=phonon.symmetry.tolerance)
    operations = symmetry.symmetry_operations
    lattice = supercell.cell.T
    positions = supercell.scaled_positions
    rotations, permutations = [], []
    for rotation, translation in zip(operations['rotations'], operations['translations'], strict=True):
        moved = positions @ rotation.T + translation
        delta = moved[:, None, :] - positions[None, :, :]
        delta -= np.round(delta)
        permutations.append(np.argmin(np.linalg.norm(delta @ lattice.T, axis=2), axis=1))
        rotations.append(lattice @ rotation @ np.linalg.inv(lattice))
    return np.array(rotations), np.array(permutations)


def tick_labels(labels: list[str], connections: list[bool]) -> list[str]:
    """One label per segment boundary of a band path (``n_segments + 1``): phonopy lists both ends of a break
    (``U``, ``K``), which become one tick ``U|K``. Empty when phonopy gave no labels."""
    if not labels:
        return []
    ticks, index = [str(labels[0])], 1
    for segment, connected in enumerate(connections):
        last = segment == len(connections) - 1
        if connected or last:
            ticks.append(str(labels[index]))
            index += 1
        else:
            ticks.append(f'{labels[index]}|{labels[index + 1]}')
            index += 2
    return ticks


def force_constants_from_forces(phonopy_data, parameters: dict) -> dict[str, Any]:
    """Φ2 (and Φ3) with symfc, phonons on the seekpath band path and a q-mesh, and the checks of the result.

    :returns: ``fc2`` compact (n_p, n, 3, 3) eV/Å², ``fc3`` compact (n_p, n, n, 3, 3, 3) eV/Å³ or None, ``bands``
        (frequencies THz (n_q, n_bands), distances 1/Å, q-points, segment labels), ``mesh`` (frequencies THz,
        weights), ``checks`` (sum-rule and symmetry residuals, acoustic frequencies at Γ, the lowest frequency).
    """
    params = force_constants_parameters(parameters)
    phonon = phonopy_data.get_phonopy_instance()
    phonon.dataset = {'displacements': np.array(phonon.dataset['displacements']), 'forces': phonopy_data.forces}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        phonon.produce_force_constants(fc_calculator='symfc', calculate_full_force_constants=True)
    fc2_full = np.array(phonon.force_constants)
    p2s = np.array(phonon.primitive.p2s_map)
    fc2 = fc2_full[p2s]
    fc3 = None
    if 3 in params['orders']:
        from phono3py import Phono3py

        ph3 = Phono3py(
            phonon.unitcell, supercell_matrix=phonon.supercell_matrix, primitive_matrix=phonon.primitive_matrix,
            symprec=params['symprec'], log_level=0,
        )  # fmt: skip
        ph3.dataset = dict(phonon.dataset)
        options = None if params['fc3_cutoff_A'] is None else f'cutoff = {params["fc3_cutoff_A"]}'
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            ph3.produce_fc3(fc_calculator='symfc', fc_calculator_options=options, is_compact_fc=True)
        fc3 = np.array(ph3.fc3)
    rotations, permutations = _supercell_operations(phonon)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        phonon.auto_band_structure(npoints=params['band_points'])
        bands = phonon.get_band_structure_dict()
        phonon.run_mesh(params['mesh'], is_gamma_center=True)
        mesh = phonon.get_mesh_dict()
        phonon.run_qpoints([[0.0, 0.0, 0.0]])
        gamma = np.sort(phonon.get_qpoints_dict()['frequencies'][0])
    labels = tick_labels(phonon.band_structure.labels or [], phonon.band_structure.path_connections or [])
    checks = {
        'fc2_sum_rule_residual_eV_A2': acoustic_sum_rule_residual(fc2),
        'fc2_symmetry_residual_eV_A2': symmetry_residual(fc2_full, rotations, permutations),
        'fc2_max_abs_eV_A2': float(np.max(np.abs(fc2))),
        'symmetry_operations': len(rotations),
        'gamma_acoustic_THz': [float(f) for f in gamma[:3]],
        'min_frequency_THz': float(min(np.min(mesh['frequencies']), np.min(np.concatenate(bands['frequencies'])))),
        'max_frequency_THz': float(np.max(mesh['frequencies'])),
    }
    if fc3 is not None:
        checks['fc3_sum_rule_residual_eV_A3'] = acoustic_sum_rule_residual(fc3)
        checks['fc3_max_abs_eV_A3'] = float(np.max(np.abs(fc3)))
    return {
        'fc2': fc2,
        'fc3': fc3,
        'bands': {
            'frequencies_THz': np.concatenate(bands['frequencies']),
            'distances': np.concatenate(bands['distances']),
            'qpoints': np.concatenate(bands['qpoints']),
            'segment_lengths': [len(segment) for segment in bands['frequencies']],
            'labels': [str(label) for label in labels],
        },
        'mesh': {'frequencies_THz': np.array(mesh['frequencies']), 'weights': np.array(mesh['weights'])},
        'checks': checks,
        'p2s_map': p2s,
        'supercell_positions_A': np.array(phonon.supercell.positions),
        'supercell_cell_A': np.array(phonon.supercell.cell),
    }


@calcfunction
def compute_force_constants(phonopy_data, parameters: orm.Dict) -> dict[str, orm.Data]:
    """Calcfunction of :func:`force_constants_from_forces`: ``fc2`` (aiida-phonopy ``ForceConstantsData``, compact,
    eV/Å²), ``fc3`` (ArrayData ``fc3_eV_A3``, compact), ``phonons`` (ArrayData: band and mesh frequencies in THz)
    and ``checks`` (Dict)."""
    result = force_constants_from_forces(phonopy_data, parameters.get_dict())
    fc2 = DataFactory('phonopy.force_constants')(
        structure=phonopy_data.get_unitcell(),
        supercell_matrix=phonopy_data.supercell_matrix,
        primitive_matrix=phonopy_data.primitive_matrix,
        symprec=phonopy_data.symprec,
        is_symmetry=phonopy_data.is_symmetry,
    )
    fc2.set_force_constants(result['fc2'])
    phonons = orm.ArrayData()
    bands, mesh = result['bands'], result['mesh']
    phonons.set_array('band_frequencies_THz', bands['frequencies_THz'])
    phonons.set_array('band_distances', bands['distances'])
    phonons.set_array('band_qpoints', bands['qpoints'])
    phonons.set_array('mesh_frequencies_THz', mesh['frequencies_THz'])
    phonons.set_array('mesh_weights', mesh['weights'])
    phonons.set_array('p2s_map', result['p2s_map'])
    phonons.set_array('supercell_positions_A', result['supercell_positions_A'])
    phonons.set_array('supercell_cell_A', result['supercell_cell_A'])
    phonons.base.attributes.set('band_segment_lengths', bands['segment_lengths'])
    phonons.base.attributes.set('band_labels', bands['labels'])
    outputs = {'fc2': fc2, 'phonons': phonons, 'checks': orm.Dict(result['checks'])}
    if result['fc3'] is not None:
        fc3 = orm.ArrayData()
        fc3.set_array('fc3_eV_A3', result['fc3'])
        outputs['fc3'] = fc3
    return outputs


def force_constant_errors(
    reference_fc2: np.ndarray,
    fc2: np.ndarray,
    reference_phonons: orm.ArrayData,
    phonons: orm.ArrayData,
    reference_fc3: np.ndarray | None = None,
    fc3: np.ndarray | None = None,
) -> dict[str, Any]:
    """A model's force constants and phonons against the reference's (same supercells): ``fc2`` parity (eV/Å²) and
    per neighbour shell, ``fc3`` parity (eV/Å³), ``phonons`` (band and mesh RMSE in THz, DOS RMSE and overlap)."""
    distances = pair_distances_A(
        reference_phonons.get_array('supercell_positions_A'),
        reference_phonons.get_array('supercell_cell_A'),
        reference_phonons.get_array('p2s_map'),
    )
    metrics: dict[str, Any] = {
        'fc2': {**parity_metrics(reference_fc2, fc2), 'unit': 'eV/A^2'},
        'fc2_shells': shell_errors(reference_fc2, fc2, distances),
        'phonons': spectrum_metrics(
            reference_phonons.get_array('band_frequencies_THz'),
            phonons.get_array('band_frequencies_THz'),
            reference_phonons.get_array('mesh_frequencies_THz'),
            phonons.get_array('mesh_frequencies_THz'),
            reference_phonons.get_array('mesh_weights'),
        ),
    }
    if reference_fc3 is not None and fc3 is not None:
        metrics['fc3'] = {**parity_metrics(reference_fc3, fc3), 'unit': 'eV/A^3'}
    return metrics


@calcfunction
def compare_force_constants(reference_fc2, fc2, reference_phonons, phonons, **fc3) -> orm.Dict:
    """Calcfunction of :func:`force_constant_errors`; ``fc3`` takes ``reference_fc3`` and ``fc3`` (ArrayData)."""
    third = {key: node.get_array('fc3_eV_A3') for key, node in fc3.items()}
    return orm.Dict(
        force_constant_errors(
            reference_fc2.force_constants,
            fc2.force_constants,
            reference_phonons,
            phonons,
            third.get('reference_fc3'),
            third.get('fc3'),
        )
    )
