"""split_training_set: seeded, reproducible, disjoint and complete parts; exit codes on bad input."""

import re

import pytest
from aiida import orm

from aiida_mlffdiff.data import TrainingSet
from aiida_mlffdiff.functions.exit_codes import EXIT_CODES
from aiida_mlffdiff.functions.split import split_counts, split_training_set

PARTS = ('train', 'validation', 'test')


def fingerprints(training_set: TrainingSet) -> list[bytes]:
    """One identity per configuration (its exact positions and energy)."""
    return [atoms.positions.tobytes() + repr(atoms.info['REF_energy']).encode() for atoms in training_set.get_atoms()]


def test_split_is_disjoint_complete_and_keeps_metadata(make_training_set):
    parent = make_training_set(n=20, seed=1)
    result, node = split_training_set.run_get_node(training_set=parent)
    assert node.is_finished_ok
    assert {part: result[part].n_structures for part in PARTS} == {'train': 16, 'validation': 2, 'test': 2}
    parts = {part: fingerprints(result[part]) for part in PARTS}
    everything = [f for part in PARTS for f in parts[part]]
    assert len(set(everything)) == len(everything) == 20  # disjoint
    assert set(everything) == set(fingerprints(parent))  # complete
    for part in PARTS:
        output = result[part]
        assert output.is_stored
        assert (output.functional, output.engine) == (parent.functional, parent.engine)
        assert parent.uuid in output.source
        assert 'seed 0' in output.source
        assert output.base.links.get_incoming().one().node.pk == node.pk
    assert node.base.links.get_incoming().get_node_by_label('training_set').pk == parent.pk


def test_same_seed_same_split_other_seed_other_split(make_training_set):
    parent = make_training_set(n=20, seed=2)

    def split(seed):
        result = split_training_set(training_set=parent, parameters=orm.Dict({'seed': seed}))
        return {part: result[part].sha256 for part in PARTS}

    assert split(5) == split(5)
    assert split(5)['train'] != split(6)['train']


def test_fractions(make_training_set):
    parent = make_training_set(n=10, seed=3)
    parameters = orm.Dict({'fractions': [0.5, 0.3, 0.2], 'seed': 1})
    result = split_training_set(training_set=parent, parameters=parameters)
    assert [result[part].n_structures for part in PARTS] == [5, 3, 2]


def test_split_counts():
    assert split_counts(100, [0.8, 0.1, 0.1]) == (80, 10, 10)
    assert split_counts(3, [0.8, 0.1, 0.1]) == (1, 1, 1)  # every part gets at least one
    assert split_counts(25, [0.7, 0.15, 0.15]) == (17, 4, 4)  # 3.75 rounds up


@pytest.mark.parametrize(
    ('parameters', 'message'),
    [
        ({'fractions': [0.8, 0.1, 0.2]}, 'fractions must sum to 1'),
        ({'fractions': [0.9, 0.1]}, 'fractions must be three numbers'),
        ({'fractions': [1.0, 0.0, 0.0]}, 'fractions must each be between 0 and 1'),
        ({'fractions': [1.2, -0.1, -0.1]}, 'fractions must each be between 0 and 1'),
        ({'fractions': ['a', 0.1, 0.1]}, 'fractions must be three numbers'),
        ({'fractions': 0.8}, 'fractions must be list'),
        ({'seed': -1}, 'seed must not be negative'),
        ({'seed': 1.5}, 'seed must be int'),
        ({'ratio': 0.8}, r'unknown key\(s\) ratio'),
    ],
)
def test_bad_parameters_exit_300(make_training_set, parameters, message):
    parent = make_training_set(n=10, seed=4)
    _, node = split_training_set.run_get_node(training_set=parent, parameters=orm.Dict(parameters))
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_PARAMETERS'][0] == 300
    assert re.search(message, node.exit_message), node.exit_message
    assert not node.base.links.get_outgoing().all()


@pytest.mark.parametrize(
    ('n', 'fractions', 'message'),
    [
        (2, [0.8, 0.1, 0.1], 'needs at least 3'),
        (4, [0.1, 0.45, 0.45], 'leave none for training'),
    ],
)
def test_too_small_exit_350(make_training_set, n, fractions, message):
    parent = make_training_set(n=n, seed=5)
    _, node = split_training_set.run_get_node(training_set=parent, parameters=orm.Dict({'fractions': fractions}))
    assert node.exit_status == EXIT_CODES['ERROR_TRAINING_SET_TOO_SMALL'][0] == 350
    assert message in node.exit_message


def test_train_sizes_are_nested_and_share_validation_and_test(make_training_set):
    """The dataset-size axis: the same seed and fractions with growing train sizes give nested train sets (which
    configurations: ``parent_indices``) and the very same validation and test sets."""
    parent = make_training_set(n=25, seed=4)
    splits = {}
    for size in (4, 0.5, 12, 1.0):
        result, node = split_training_set.run_get_node(
            training_set=parent, parameters=orm.Dict({'seed': 3, 'train_size': size})
        )
        assert node.is_finished_ok, node.exit_message
        splits[size] = result
    trains = {size: set(result['train'].parent_indices) for size, result in splits.items()}
    # 25 configurations: 3 validation, 3 test, a train part of 19; half of it rounds to 10
    assert [len(trains[size]) for size in (4, 0.5, 12, 1.0)] == [4, 10, 12, 19]
    assert trains[4] < trains[0.5] < trains[12] < trains[1.0]
    for part in ('validation', 'test'):
        assert len({result[part].sha256 for result in splits.values()}) == 1
        assert not trains[1.0] & set(splits[4][part].parent_indices)
    assert (
        splits[1.0]['train'].sha256
        == split_training_set(training_set=parent, parameters=orm.Dict({'seed': 3}))['train'].sha256
    )
    assert 'train size 4 (nested)' in splits[4]['train'].source
    assert fingerprints(splits[4]['train']) == [fingerprints(parent)[i] for i in sorted(trains[4])]


def test_train_size_larger_than_the_train_part_and_bad_values(make_training_set):
    parent = make_training_set(n=10, seed=5)
    _, node = split_training_set.run_get_node(training_set=parent, parameters=orm.Dict({'train_size': 9}))
    assert node.exit_status == EXIT_CODES['ERROR_TRAINING_SET_TOO_SMALL'][0]
    assert 'train_size 9 is larger than the train part (8 configurations)' in node.exit_message
    for bad in (0, -3, 1.5, 0.0, True):
        _, node = split_training_set.run_get_node(training_set=parent, parameters=orm.Dict({'train_size': bad}))
        assert node.exit_status == EXIT_CODES['ERROR_INVALID_PARAMETERS'][0], bad
        assert 'train_size' in node.exit_message


def test_reference_set_gives_the_same_test_configurations_with_its_labels(make_training_set):
    """Reference quality: the test part of a relabelled set holds the same configurations with its own labels."""
    parent = make_training_set(n=12, seed=6)
    relabelled = []
    for atoms in parent.get_atoms():
        atoms.info['REF_energy'] = atoms.info['REF_energy'] + 1.0
        relabelled.append(atoms)
    reference = TrainingSet.from_atoms(relabelled, functional='lj-test', engine='ase-lj').store()
    result, node = split_training_set.run_get_node(training_set=parent, reference_set=reference)
    assert node.is_finished_ok, node.exit_message
    test, reference_test = result['test'], result['reference_test']
    assert reference_test.parent_indices == test.parent_indices
    for one, other in zip(test.get_atoms(), reference_test.get_atoms(), strict=True):
        assert (one.positions == other.positions).all()
        assert other.info['REF_energy'] == pytest.approx(one.info['REF_energy'] + 1.0)
    other = make_training_set(n=12, seed=7)
    _, node = split_training_set.run_get_node(training_set=parent, reference_set=other)
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_PARAMETERS'][0]
    assert 'not the same configurations' in node.exit_message
