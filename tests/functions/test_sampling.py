"""sample_configurations: ranges, reference, snapshots, reproducible seeds, provenance and exit codes."""

import re

import numpy as np
import pytest
from aiida import orm

from aiida_mlffdiff.functions.exit_codes import EXIT_CODES
from aiida_mlffdiff.functions.sampling import minimum_distance, sample_configurations, snapshot_indices
from aiida_mlffdiff.structures import li6ps5cl, li6ps5cl_structure


@pytest.fixture
def primitive(aiida_profile):
    """The shipped primitive Li6PS5Cl cell, stored."""
    return li6ps5cl_structure('primitive').store()


def arrays(structure: orm.StructureData) -> tuple[np.ndarray, np.ndarray]:
    """(cell, positions) in Å."""
    return np.array(structure.cell), np.array([site.position for site in structure.sites])


def sample(structure, snapshots=None, **parameters):
    inputs = {'structure': structure, 'parameters': orm.Dict(parameters)}
    if snapshots is not None:
        inputs['snapshots'] = snapshots
    return sample_configurations.run_get_node(**inputs)


def test_reference_strain_rattle_and_provenance(primitive):
    result, node = sample(primitive, n_configurations=5, seed=1)
    assert node.is_finished_ok, node.exit_message
    configurations = result['configurations']
    assert sorted(configurations) == ['c0000', 'c0001', 'c0002', 'c0003', 'c0004']
    cell, positions = arrays(primitive)
    reference = configurations['c0000']
    np.testing.assert_array_equal(arrays(reference)[0], cell)
    np.testing.assert_array_equal(arrays(reference)[1], positions)
    assert reference.base.attributes.get('mlffdiff_config_type') == 'reference'
    assert reference.base.attributes.get('mlffdiff_li_sites') == primitive.base.attributes.get('mlffdiff_li_sites')
    assert reference.uuid != primitive.uuid
    for label in ['c0001', 'c0002', 'c0003', 'c0004']:
        configuration = configurations[label]
        assert configuration.get_formula() == primitive.get_formula()
        assert configuration.base.attributes.get('mlffdiff_config_type') == 'strain+rattle'
        assert 'mlffdiff_ewald_energy_eV' not in configuration.base.attributes.all
        strain = np.array(configuration.base.attributes.get('mlffdiff_strain'))
        np.testing.assert_allclose(strain, strain.T)
        assert 0 < np.abs(strain).max() <= 0.03
        new_cell, new_positions = arrays(configuration)
        np.testing.assert_allclose(new_cell, cell @ (np.eye(3) + strain), atol=1e-12)
        displacement = new_positions - positions @ (np.eye(3) + strain)
        assert 0.01 < np.abs(displacement).max() < 0.6  # 0.1 Å Gaussian rattle
        assert minimum_distance(new_cell, new_positions) >= 1.5
    # every output is created by the calcfunction, in the nested namespace
    outgoing = {link.link_label: link.node.pk for link in node.base.links.get_outgoing().all()}
    assert outgoing == {f'configurations__{label}': configurations[label].pk for label in configurations}
    assert node.outputs.configurations.c0003.pk == configurations['c0003'].pk
    assert node.base.links.get_incoming().get_node_by_label('structure').pk == primitive.pk


def test_rattle_statistics(aiida_profile):
    structure = li6ps5cl_structure('conventional').store()
    result, node = sample(structure, n_configurations=4, max_strain=0.0, rattle_A=0.05, include_reference=False)
    assert node.is_finished_ok, node.exit_message
    _, positions = arrays(structure)
    displacements = np.concatenate([arrays(c)[1] - positions for c in result['configurations'].values()])
    assert displacements.size == 4 * 52 * 3
    assert np.std(displacements) == pytest.approx(0.05, rel=0.1)
    assert abs(np.mean(displacements)) < 0.01
    for configuration in result['configurations'].values():
        np.testing.assert_array_equal(arrays(configuration)[0], arrays(structure)[0])  # no strain


def test_rattle_ladder(aiida_profile):
    """With rattle_max_A the displacement spread climbs evenly from rattle_A to rattle_max_A, recorded per copy."""
    structure = li6ps5cl_structure('conventional').store()
    parameters = {'max_strain': 0.0, 'rattle_A': 0.02, 'rattle_max_A': 0.2, 'min_distance_A': 0.5}
    result, node = sample(structure, n_configurations=5, **parameters)
    assert node.is_finished_ok, node.exit_message
    _, positions = arrays(structure)
    labels = ['c0001', 'c0002', 'c0003', 'c0004']
    expected = np.linspace(0.02, 0.2, 4)
    recorded = [result['configurations'][label].base.attributes.get('mlffdiff_rattle_A') for label in labels]
    np.testing.assert_allclose(recorded, expected)
    spreads = [np.std(arrays(result['configurations'][label])[1] - positions) for label in labels]
    np.testing.assert_allclose(spreads, expected, rtol=0.15)
    assert 'mlffdiff_rattle_A' not in result['configurations']['c0000'].base.attributes.all  # the reference

    # Without rattle_max_A every copy uses rattle_A, drawn exactly as before the ladder existed.
    fixed, _ = sample(structure, n_configurations=3, max_strain=0.0, rattle_A=0.05, min_distance_A=0.5)
    assert {c.base.attributes.get('mlffdiff_rattle_A', None) for c in list(fixed['configurations'].values())[1:]} == {
        0.05
    }


def test_same_seed_same_configurations_other_seed_other(primitive):
    def positions(seed):
        result, _ = sample(primitive, n_configurations=3, seed=seed)
        return [arrays(result['configurations'][label]) for label in ('c0001', 'c0002')]

    first, again, other = positions(7), positions(7), positions(8)
    for (cell_a, pos_a), (cell_b, pos_b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(cell_a, cell_b)
        np.testing.assert_array_equal(pos_a, pos_b)
    assert not np.allclose(first[0][1], other[0][1])


def test_without_reference(primitive):
    result, node = sample(primitive, n_configurations=2, include_reference=False)
    assert node.is_finished_ok
    assert sorted(result['configurations']) == ['c0000', 'c0001']
    assert result['configurations']['c0000'].base.attributes.get('mlffdiff_config_type') == 'strain+rattle'


def make_snapshots(n_frames=10, seed=0, atoms=None, with_cells=True):
    atoms = atoms if atoms is not None else li6ps5cl('primitive')
    rng = np.random.default_rng(seed)
    positions = atoms.positions[None] + rng.normal(0, 0.05, size=(n_frames, len(atoms), 3))
    trajectory = orm.TrajectoryData()
    cells = np.repeat(atoms.cell[:][None], n_frames, axis=0) * 1.01 if with_cells else None
    trajectory.set_trajectory(
        atoms.get_chemical_symbols(), positions, cells=cells, pbc=(True, True, True) if with_cells else None
    )
    return trajectory.store()


def test_snapshots(primitive):
    snapshots = make_snapshots()
    result, node = sample(primitive, snapshots=snapshots, n_configurations=2, snapshot_count=3)
    assert node.is_finished_ok, node.exit_message
    configurations = result['configurations']
    assert sorted(configurations) == ['c0000', 'c0001', 'c0002', 'c0003', 'c0004']
    frames = snapshot_indices(10, 3)
    assert frames == [0, 4, 9] or frames == [0, 5, 9]
    for label, frame in zip(['c0002', 'c0003', 'c0004'], frames, strict=True):
        configuration = configurations[label]
        assert configuration.base.attributes.get('mlffdiff_config_type') == 'snapshot'
        assert configuration.base.attributes.get('mlffdiff_snapshot_frame') == frame
        np.testing.assert_allclose(arrays(configuration)[1], snapshots.get_positions()[frame])
        np.testing.assert_allclose(arrays(configuration)[0], snapshots.get_cells()[frame])
    assert node.base.links.get_incoming().get_node_by_label('snapshots').pk == snapshots.pk

    rattled, node = sample(
        primitive, snapshots=snapshots, n_configurations=1, snapshot_count=2, rattle_snapshots=True, seed=2
    )
    assert node.is_finished_ok, node.exit_message
    last = rattled['configurations']['c0002']
    assert last.base.attributes.get('mlffdiff_config_type') == 'snapshot+strain+rattle'
    assert last.base.attributes.get('mlffdiff_snapshot_frame') == 9
    assert not np.allclose(arrays(last)[1], snapshots.get_positions()[9])


def test_snapshots_without_cells_use_the_structure_cell(primitive):
    snapshots = make_snapshots(n_frames=4, with_cells=False)
    result, node = sample(primitive, snapshots=snapshots, n_configurations=1, snapshot_count=1)
    assert node.is_finished_ok, node.exit_message
    np.testing.assert_array_equal(arrays(result['configurations']['c0001'])[0], arrays(primitive)[0])


def test_snapshot_errors(primitive):
    _, node = sample(primitive, n_configurations=1, snapshot_count=2)
    assert node.exit_status == EXIT_CODES['ERROR_MISSING_INPUT'][0] == 340
    _, node = sample(primitive, snapshots=make_snapshots(n_frames=2), n_configurations=1, snapshot_count=3)
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_SNAPSHOTS'][0] == 361
    assert 'has 2 frames' in node.exit_message
    other = make_snapshots(atoms=li6ps5cl('conventional'))
    _, node = sample(primitive, snapshots=other, n_configurations=1, snapshot_count=1)
    assert node.exit_status == 361
    assert 'differ from the structure' in node.exit_message
    assert not node.base.links.get_outgoing().all()


@pytest.mark.parametrize(
    ('parameters', 'message'),
    [
        ({}, 'n_configurations is required'),
        ({'n_configurations': 0}, 'n_configurations must be at least 1'),
        ({'n_configurations': 2.0}, 'n_configurations must be int'),
        ({'n_configurations': 2, 'max_strain': -0.01}, r'max_strain must be in \[0, 0.2\)'),
        ({'n_configurations': 2, 'max_strain': 0.2}, r'max_strain must be in \[0, 0.2\)'),
        ({'n_configurations': 2, 'rattle_A': -0.1}, 'rattle_A must be at least 0'),
        ({'n_configurations': 2, 'seed': -1}, 'seed must be at least 0'),
        ({'n_configurations': 2, 'include_reference': 1}, 'include_reference must be bool'),
        ({'n_configurations': 2, 'snapshot_count': -1}, 'snapshot_count must be at least 0'),
        ({'n_configurations': 2, 'rattle': 0.1}, r'unknown key\(s\) rattle'),
        ({'n_configurations': 2, 'rattle_A': 0.2, 'rattle_max_A': 0.1}, r'rattle_max_A \(0.1 Å\) must not be below'),
    ],
)
def test_bad_parameters_exit_300(primitive, parameters, message):
    _, node = sample(primitive, **parameters)
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_PARAMETERS'][0] == 300
    assert re.search(message, node.exit_message), node.exit_message
    assert not node.base.links.get_outgoing().all()


def test_bad_structures_exit_360(aiida_profile):
    molecule = orm.StructureData(cell=np.eye(3) * 10, pbc=(False, False, False))
    molecule.append_atom(position=(0, 0, 0), symbols='Li')
    molecule.append_atom(position=(2.5, 0, 0), symbols='Cl')
    _, node = sample(molecule.store(), n_configurations=2)
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_STRUCTURE'][0] == 360
    assert 'periodic' in node.exit_message

    overlapping = orm.StructureData(cell=np.eye(3) * 6)
    overlapping.append_atom(position=(0, 0, 0), symbols='Li')
    overlapping.append_atom(position=(5.8, 0.1, 0), symbols='Cl')  # 0.22 Å away through the boundary
    _, node = sample(overlapping.store(), n_configurations=2)
    assert node.exit_status == 360
    assert 'overlapping' in node.exit_message


def test_min_distance_never_met_exit_362(primitive):
    _, node = sample(primitive, n_configurations=2, min_distance_A=5.0, max_tries=3)
    assert node.exit_status == EXIT_CODES['ERROR_SAMPLING_FAILED'][0] == 362
    assert '3 draws' in node.exit_message
    assert not node.base.links.get_outgoing().all()


def test_min_distance_redraws(primitive):
    # with a large rattle some draws fail the 1.5 Å check and are redrawn; every kept copy passes it
    result, node = sample(primitive, n_configurations=6, rattle_A=0.35, max_strain=0.1, include_reference=False)
    assert node.is_finished_ok, node.exit_message
    for configuration in result['configurations'].values():
        assert minimum_distance(*arrays(configuration)) >= 1.5
