"""The architecture records are the single home of architecture knowledge: everything else agrees with them."""

from __future__ import annotations

import pytest

from aiida_mlffdiff.architectures import ARCHITECTURES, TRAINABLE, get_architecture
from aiida_mlffdiff.calculations.md_ensemble import BATCH_PAYS_UP_TO_ATOMS, DEFAULT_ENGINE, TORCHSIM_ARCHITECTURES
from aiida_mlffdiff.calculations.writers import WRITERS
from aiida_mlffdiff.data.mlff_model import ARCHITECTURES as MODEL_ARCHITECTURES
from aiida_mlffdiff.drivers.evaluate_model import ENGINE_PACKAGES
from aiida_mlffdiff.environments.engines import ENGINES
from aiida_mlffdiff.parsers.train_logs import READERS


def test_a_trainable_architecture_is_a_record_a_writer_and_a_log_reader():
    assert set(WRITERS) == set(TRAINABLE) == set(READERS)
    for name in TRAINABLE:
        assert WRITERS[name].engine == ARCHITECTURES[name].environment


def test_every_record_has_its_environment_and_executables():
    for record in ARCHITECTURES.values():
        spec = ENGINES[record.environment]
        assert set(record.executables.values()) <= set(spec.executables), (record.name, spec.executables)
        if record.torchsim:
            assert f'torchsim-{record.name}' in ENGINES
        assert record.default_md_engine in ('ase', 'torchsim')
        assert record.default_md_engine == 'ase' or record.torchsim


def test_the_rest_of_the_package_reads_the_records():
    assert tuple(ARCHITECTURES) == MODEL_ARCHITECTURES
    assert set(TORCHSIM_ARCHITECTURES) == {name for name, record in ARCHITECTURES.items() if record.torchsim}
    assert {name: record.default_md_engine for name, record in ARCHITECTURES.items()} == DEFAULT_ENGINE
    assert set(BATCH_PAYS_UP_TO_ATOMS) == {name for name, r in ARCHITECTURES.items() if r.batch_pays_up_to_atoms}


def test_the_stand_alone_drivers_table_matches_the_records():
    """The driver scripts cannot import the package: their copy of the packages must agree."""
    assert {name: record.package for name, record in ARCHITECTURES.items()} == ENGINE_PACKAGES


def test_unknown_architecture_names_the_known_ones():
    assert get_architecture(' MACE ').name == 'mace'
    with pytest.raises(ValueError, match=r"unknown architecture 'schnet': choose one of mace, nequip"):
        get_architecture('schnet')


def test_the_receptive_field_reads_the_writers_layer_counts():
    """cutoff × message-passing layers; the defaults are the training writers' own."""
    from aiida_mlffdiff.architectures import receptive_field_A

    for name in TRAINABLE:
        record = ARCHITECTURES[name]
        if record.layers_key is not None:
            assert WRITERS[name].schema[record.layers_key].default == record.default_layers, name
    assert receptive_field_A('mace', 4.0, {'num_interactions': 3}) == 12.0
    assert receptive_field_A('mace', 5.0) == 10.0
    assert receptive_field_A('nequip', 4.0, {'num_layers': 1}) == 4.0
    assert receptive_field_A('deepmd', 6.0, {'num_layers': 7}) == 6.0  # a local descriptor: one cutoff
