"""MsdData: arrays in the repository, queryable attributes, clear errors on bad arrays."""

import numpy as np
import pytest
from aiida import orm

from aiida_mlffdiff.analysis import AnalysisError
from aiida_mlffdiff.data import MsdData


def make_msd(**overrides) -> MsdData:
    time = np.arange(20) * 0.5
    values = {
        'time_ps': time,
        'msd_A2': np.vstack([1.2 * time, 1.3 * time]),
        'collective_msd_A2': np.vstack([1.0 * time, 1.5 * time]),
        'species': 'Li',
        'n_ions': 24,
        'volume_A3': 1048.8,
        'temperature_K': 600.0,
    }
    values.update(overrides)
    return MsdData(**values)


def test_round_trip_and_attributes():
    node = make_msd().store()
    loaded = orm.load_node(node.pk)
    assert isinstance(loaded, MsdData)
    np.testing.assert_array_equal(loaded.msd_A2[1], 1.3 * np.arange(20) * 0.5)
    np.testing.assert_array_equal(loaded.collective_msd_A2[0], np.arange(20) * 0.5)
    assert (loaded.species, loaded.n_ions, loaded.n_replicas, loaded.temperature_K) == ('Li', 24, 2, 600.0)
    assert loaded.base.attributes.get('frame_interval_ps') == pytest.approx(0.5)


def test_attributes_are_queryable():
    make_msd(temperature_K=612.5).store()
    query = orm.QueryBuilder().append(MsdData, filters={'attributes.temperature_K': 612.5, 'attributes.species': 'Li'})
    assert query.count() == 1


def test_without_collective_and_temperature():
    node = make_msd(collective_msd_A2=None, temperature_K=None)
    assert node.collective_msd_A2 is None
    assert node.temperature_K is None


@pytest.mark.parametrize(
    ('overrides', 'message'),
    [
        ({'msd_A2': np.ones((2, 5))}, 'msd_A2 must have shape'),
        ({'msd_A2': np.full((2, 20), np.nan)}, 'NaN'),
        ({'time_ps': np.arange(20) * 0.5 + 1}, 'start at 0'),
        ({'temperature_K': -10.0}, 'temperature_K must be a positive'),
        ({'n_ions': 0}, 'n_ions must be at least 1'),
        ({'volume_A3': 0.0}, 'volume_A3 must be a positive'),
        ({'collective_msd_A2': np.ones((1, 20))}, 'collective_msd_A2 must have shape'),
    ],
)
def test_bad_arrays_are_refused(overrides, message):
    with pytest.raises(AnalysisError, match=message):
        make_msd(**overrides)
