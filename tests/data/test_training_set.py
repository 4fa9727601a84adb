"""TrainingSet: one exact extxyz file in the repository, queryable attributes, clear errors on bad configurations."""

import hashlib

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.io import write

from aiida_mlffdiff.data import TrainingSet, TrainingSetError
from aiida_mlffdiff.data.converters import write_extxyz


def assert_same_configurations(left, right, atol=1e-10):
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=atol)
        np.testing.assert_allclose(a.cell[:], b.cell[:], rtol=0, atol=atol)
        assert a.pbc.all()
        assert b.pbc.all()
        assert a.get_potential_energy() == pytest.approx(b.get_potential_energy(), abs=atol)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=0, atol=atol)
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), rtol=0, atol=atol)
        assert a.info.get('config_type') == b.info.get('config_type')


@pytest.mark.filterwarnings('ignore:`json_encoders` is deprecated')  # aiida-core's to_model()
def test_round_trip_through_the_database(lj_configurations):
    configurations = lj_configurations(n=9, seed=1)
    node = TrainingSet.from_atoms(configurations, functional='lj-test', engine='ase', source='unit test').store()
    loaded = orm.load_node(node.pk)
    assert isinstance(loaded, TrainingSet)
    atoms_list = loaded.get_atoms()
    assert_same_configurations(atoms_list, configurations, atol=1e-10)
    first = atoms_list[0]
    assert first.info['REF_energy'] == configurations[0].get_potential_energy()
    np.testing.assert_array_equal(first.arrays['REF_forces'], configurations[0].get_forces())
    assert first.info['REF_stress'].shape == (9,)
    np.testing.assert_allclose(
        first.info['REF_stress'].reshape(3, 3), configurations[0].get_stress(voigt=False), rtol=0, atol=1e-15
    )
    assert first.calc.results['stress'].shape == (6,)  # Voigt, as ASE expects
    assert loaded.to_model().attributes.source == 'unit test'  # free-text source, unlike Data's dict


def test_attributes(lj_configurations):
    configurations = lj_configurations(n=7, seed=2)
    node = TrainingSet.from_atoms(configurations, functional=' PBE ', engine='QE', source='LJ stand-in')
    assert node.n_structures == 7
    assert node.n_atoms_total == sum(len(atoms) for atoms in configurations)
    assert node.species == ['Cl', 'Li', 'P', 'S']
    assert (node.functional, node.engine, node.source) == ('pbe', 'qe', 'LJ stand-in')
    assert node.has_stress is True
    assert node.stress_unit == 'eV/A^3'
    content = node.base.repository.get_object_content(TrainingSet.FILENAME, mode='rb')
    assert node.sha256 == hashlib.sha256(content).hexdigest()
    assert node.base.repository.list_object_names() == ['configurations.extxyz']


def test_attributes_are_queryable(make_training_set):
    node = make_training_set(n=5, seed=3, functional='lj-query-test')
    query = orm.QueryBuilder().append(
        TrainingSet,
        filters={
            'attributes.functional': 'lj-query-test',
            'attributes.n_structures': 5,
            'attributes.has_stress': True,
            'attributes.sha256': node.sha256,
            'attributes.species': ['Cl', 'Li', 'P', 'S'],
        },
        project='id',
    )
    assert query.all(flat=True) == [node.pk]


def test_labels_from_info_and_arrays_give_the_same_file(lj_configurations):
    configurations = lj_configurations(n=4, seed=4)
    explicit = []
    for atoms in configurations:
        plain = Atoms(atoms.symbols, positions=atoms.positions, cell=atoms.cell, pbc=True)
        plain.info['REF_energy'] = atoms.get_potential_energy()
        plain.info['REF_stress'] = atoms.get_stress(voigt=False)  # 3x3 accepted too
        plain.info['config_type'] = atoms.info['config_type']
        plain.arrays['REF_forces'] = atoms.get_forces()
        explicit.append(plain)
    from_calc = TrainingSet.from_atoms(configurations, functional='lj-test')
    from_info = TrainingSet.from_atoms(explicit, functional='lj-test')
    assert from_calc.sha256 == from_info.sha256


def test_without_stress(lj_configurations):
    configurations = lj_configurations(n=3, seed=5)
    del configurations[1].calc.results['stress']
    node = TrainingSet.from_atoms(configurations, functional='lj-test')
    assert node.has_stress is False
    atoms_list = node.get_atoms()
    assert 'stress' not in atoms_list[1].calc.results
    assert 'REF_stress' not in atoms_list[1].info
    assert 'REF_stress' in atoms_list[0].info


def broken(lj_configurations, what):
    atoms_list = lj_configurations(n=3, seed=6)
    atoms = atoms_list[1]
    if what == 'energy':
        del atoms.calc.results['energy']
    elif what == 'forces':
        del atoms.calc.results['forces']
    elif what == 'nan_energy':
        atoms.calc.results['energy'] = float('nan')
    elif what == 'inf_forces':
        atoms.calc.results['forces'][2, 1] = np.inf
    elif what == 'nan_stress':
        atoms.calc.results['stress'][3] = np.nan
    elif what == 'nan_position':
        atoms.positions[0, 0] = np.nan
    elif what == 'forces_shape':
        atoms.calc.results['forces'] = atoms.calc.results['forces'][:-1]
    elif what == 'not_periodic':
        atoms.pbc = [True, True, False]
    elif what == 'no_cell':
        atoms.cell[2] = 0.0
    elif what == 'no_calculator':
        atoms.calc = None
    elif what == 'huge_force':
        atoms.calc.results['forces'][4, 0] = 1e6
    elif what == 'overlap':
        atoms.positions[3] = atoms.positions[2] + [0.01, 0.0, 0.0]
    return atoms_list


@pytest.mark.parametrize(
    ('what', 'message'),
    [
        ('energy', 'configuration 1 has no energy'),
        ('forces', 'configuration 1 has no forces'),
        ('nan_energy', 'configuration 1: the energy is not finite'),
        ('inf_forces', 'configuration 1: the forces contain NaN or inf'),
        ('nan_stress', 'configuration 1: the stress contains NaN or inf'),
        ('nan_position', 'configuration 1: the positions contain NaN or inf'),
        ('forces_shape', r'configuration 1: forces must have shape \(12, 3\), got \(11, 3\)'),
        ('not_periodic', 'configuration 1 is not periodic in 3D'),
        ('no_cell', 'configuration 1 has a singular or non-finite cell'),
        ('no_calculator', 'configuration 1 has no energy'),
        ('huge_force', r'configuration 1: atom 4 has a force component of 1e\+06 eV/Å'),
        ('overlap', 'configuration 1: atoms 2 and 3 are 0.010 Å apart'),
    ],
)
def test_bad_configurations_are_refused(lj_configurations, what, message):
    with pytest.raises(TrainingSetError, match=message):
        TrainingSet.from_atoms(broken(lj_configurations, what), functional='lj-test')


def test_copies_are_counted_and_a_test_set_of_copies_is_found(lj_configurations):
    """Ten copies of one configuration are one distinct configuration; the split of such a set puts training
    configurations into the test set, which TrainingWorkChain reports."""
    from aiida_mlffdiff.workchains.training import shared_configurations

    one = lj_configurations(n=1, seed=3)[0]
    copies = TrainingSet.from_atoms([one] * 10, functional='lj-test')
    assert copies.n_structures == 10
    assert copies.n_unique == 1
    assert shared_configurations(copies.subset([0, 1, 2]), copies.subset([8, 9])) == 2
    distinct = TrainingSet.from_atoms(lj_configurations(n=5, seed=4), functional='lj-test')
    assert distinct.n_unique == 5
    assert shared_configurations(distinct.subset([0, 1, 2]), distinct.subset([3, 4])) == 0


def test_bad_arguments_are_refused(lj_configurations):
    with pytest.raises(TrainingSetError, match='no configuration given'):
        TrainingSet.from_atoms([], functional='pbe')
    with pytest.raises(TrainingSetError, match='functional must not be empty'):
        TrainingSet.from_atoms(lj_configurations(n=1), functional='  ')
    with pytest.raises(ValueError, match=r'is not an ase\.Atoms'):  # TrainingSetError is a ValueError
        TrainingSet.from_atoms(['Li'], functional='pbe')


def test_from_extxyz_with_our_keys_custom_keys_and_plain_ase(lj_configurations, tmp_path):
    configurations = lj_configurations(n=4, seed=7)
    reference = TrainingSet.from_atoms(configurations, functional='lj-test')
    ours = TrainingSet.from_extxyz(write_extxyz(configurations, tmp_path / 'a.extxyz'), functional='lj-test')
    assert ours.sha256 == reference.sha256
    assert ours.source == 'read from a.extxyz'
    custom = write_extxyz(configurations, tmp_path / 'b.extxyz', 'dft_energy', 'dft_forces', 'dft_stress')
    node = TrainingSet.from_extxyz(
        custom, functional='lj-test', energy_key='dft_energy', forces_key='dft_forces', stress_key='dft_stress'
    )
    assert node.sha256 == reference.sha256
    write(tmp_path / 'plain.extxyz', configurations, format='extxyz')  # ASE: calculator results, 8 decimals
    plain = TrainingSet.from_extxyz(tmp_path / 'plain.extxyz', functional='lj-test', source='ASE file')
    assert plain.has_stress
    assert_same_configurations(plain.get_atoms(), configurations, atol=1e-8)
    with pytest.raises(TrainingSetError, match='has no energy'):
        TrainingSet.from_extxyz(custom, functional='lj-test')  # default keys: the labels are not found
    with pytest.raises(TrainingSetError, match='is not a file'):
        TrainingSet.from_extxyz(tmp_path / 'missing.extxyz', functional='lj-test')


def test_from_training_sets(make_training_set):
    first = make_training_set(n=3, seed=8)
    second = make_training_set(n=4, seed=9)
    joined = TrainingSet.from_training_sets([first, second])
    assert joined.n_structures == 7
    assert (joined.functional, joined.engine) == ('lj-test', 'ase-lj')
    assert first.uuid in joined.source
    assert_same_configurations(joined.get_atoms(), first.get_atoms() + second.get_atoms(), atol=0)
    hse = make_training_set(n=3, seed=10, functional='hse06')
    with pytest.raises(TrainingSetError, match=r'different functionals \(hse06, lj-test\)'):
        TrainingSet.from_training_sets([first, hse])
    mixed = TrainingSet.from_training_sets([first, hse], functional='mixed', source='deliberately mixed')
    assert (mixed.functional, mixed.source, mixed.n_structures) == ('mixed', 'deliberately mixed', 6)


def test_subset(make_training_set):
    parent = make_training_set(n=6, seed=11)
    part = parent.subset([4, 1])
    assert not part.is_stored
    assert (part.n_structures, part.functional, part.engine) == (2, parent.functional, parent.engine)
    assert parent.uuid in part.source
    parent_atoms = parent.get_atoms()
    assert_same_configurations(part.get_atoms(), [parent_atoms[4], parent_atoms[1]], atol=0)
    assert parent.subset(range(6)).sha256 == parent.sha256
    with pytest.raises(TrainingSetError, match=r'indices \[6\] are outside 0..5'):
        parent.subset([0, 6])
    with pytest.raises(TrainingSetError, match='repeated indices'):
        parent.subset([1, 1])
    with pytest.raises(TrainingSetError, match='at least one index'):
        parent.subset([])
