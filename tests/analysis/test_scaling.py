"""The MD cost model: the log-log slope, interpolation, at-least-linear extrapolation and the protocol's plan."""

import math

import numpy as np
import pytest

from aiida_mlffdiff.analysis.scaling import BYTES_PER_VALUE, loglog_slope, plan_md, seconds_per_step_at


def test_slope_of_a_power_law_and_of_an_overhead_dominated_cost():
    n = np.array([8, 64, 512])
    slope, error = loglog_slope(n, 2e-5 * n**1.0)
    assert slope == pytest.approx(1.0)
    assert error == pytest.approx(0.0, abs=1e-9)
    slope, error = loglog_slope(n, 1e-3 + 2e-6 * n)  # a fixed cost per step flattens the small sizes
    assert 0.1 < slope < 0.5
    assert error > 0
    with pytest.raises(ValueError, match='two different sizes'):
        loglog_slope([8, 8], [1.0, 2.0])


def test_interpolated_inside_extrapolated_at_least_linearly_outside():
    n, t = np.array([8, 64, 512]), np.array([1e-3, 2e-3, 8e-3])
    assert seconds_per_step_at(n, t, 64) == pytest.approx(2e-3)
    assert seconds_per_step_at(n, t, 8 * 8**0.5) == pytest.approx(math.sqrt(1e-3 * 2e-3))  # log-log midpoint
    assert seconds_per_step_at(n, t, 4) == 1e-3  # never cheaper than the smallest size
    # the last segment grows as N^(2/3) (2→8 ms over 8×): extrapolated linearly, not more slowly
    assert seconds_per_step_at(n, t, 1024) == pytest.approx(16e-3)
    steep = np.array([1e-3, 2e-3, 32e-3])  # N^(4/3) in the last segment: kept
    assert seconds_per_step_at(n, steep, 1024) == pytest.approx(32e-3 * 2 ** (4 / 3))


def test_plan_of_the_reference_protocol():
    """300 replicas × 70 ps at 2 fs, 10 ms per step: 35 000 steps each."""
    plan = plan_md(0.01, n_atoms=416, replicas=300, production_ps=70.0, timestep_fs=2.0, parallel_replicas=16)
    assert plan['steps_per_replica'] == 35_000
    assert plan['process_hours'] == pytest.approx(300 * 35_000 * 0.01 / 3600)
    assert plan['wall_hours'] == pytest.approx(math.ceil(300 / 16) * 35_000 * 0.01 / 3600)
    assert plan['storage_bytes'] == 300 * (70_000 / 20) * 416 * 3 * BYTES_PER_VALUE
