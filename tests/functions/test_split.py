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
