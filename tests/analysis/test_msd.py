"""FFT tracer and collective MSD against brute-force all-time-origins averages."""

import numpy as np
import pytest

from aiida_mlffdiff.analysis import AnalysisError, collective_msd, tracer_msd


def brute_force_tracer(positions):
    """<|r_i(k+m) - r_i(k)|²> over every origin k and atom i, by explicit loops over lags."""
    n_frames = positions.shape[0]
    result = np.zeros(n_frames)
    for lag in range(1, n_frames):
        displacement = positions[lag:] - positions[:-lag]
        result[lag] = np.mean(np.sum(displacement**2, axis=-1))
    return result


def brute_force_collective(positions, charges=None):
    """<|Σ_i q_i Δr_i|²> over every origin, divided by Σ q_i² (n for unit charges)."""
    n_frames, n_atoms = positions.shape[:2]
    charges = np.ones(n_atoms) if charges is None else np.asarray(charges, dtype=float)
    result = np.zeros(n_frames)
    for lag in range(1, n_frames):
        total = np.einsum('kni,n->ki', positions[lag:] - positions[:-lag], charges)
        result[lag] = np.mean(np.sum(total**2, axis=-1)) / np.sum(charges**2)
    return result


def random_walk(seed, n_frames, n_atoms, step=0.3, offset=0.0, drift=0.0):
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=step, size=(n_frames, n_atoms, 3)) + drift
    return np.cumsum(steps, axis=0) + offset + rng.uniform(-5, 5, size=(1, n_atoms, 3))


def assert_relative(actual, expected, rtol):
    positive = expected > 0
    np.testing.assert_allclose(actual[positive], expected[positive], rtol=rtol)
    np.testing.assert_allclose(actual[~positive], 0.0, atol=1e-12)


@pytest.mark.parametrize(
    ('seed', 'n_frames', 'n_atoms', 'offset', 'drift'),
    [
        (0, 2, 1, 0.0, 0.0),
        (1, 3, 2, 0.0, 0.0),
        (2, 97, 5, 0.0, 0.0),  # prime length: FFT padding
        (3, 256, 3, 0.0, 0.0),
        (4, 500, 4, 1.0e3, 0.0),  # far from the origin: cancellation
        (5, 300, 6, 0.0, 0.2),  # ballistic part
    ],
)
def test_tracer_msd_matches_brute_force(seed, n_frames, n_atoms, offset, drift):
    positions = random_walk(seed, n_frames, n_atoms, offset=offset, drift=drift)
    msd = tracer_msd(positions)
    assert msd.shape == (n_frames,)
    assert msd[0] == pytest.approx(0.0, abs=1e-9)
    assert_relative(msd, brute_force_tracer(positions), rtol=1e-10)


def test_tracer_msd_is_mean_over_atoms_and_translation_invariant():
    positions = random_walk(6, 120, 4)
    per_atom = np.array([tracer_msd(positions[:, [i]]) for i in range(4)])
    np.testing.assert_allclose(tracer_msd(positions), per_atom.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        tracer_msd(positions + np.array([7.0, -3.0, 100.0])), tracer_msd(positions), rtol=1e-9, atol=1e-10
    )


def test_tracer_msd_of_a_straight_line():
    """Ballistic motion r = v t has MSD |v|² (m Δt)² at every lag, whatever the origin."""
    v = np.array([0.3, -0.4, 1.2])
    positions = (np.arange(64)[:, None, None] * v) + np.zeros((1, 2, 3))
    np.testing.assert_allclose(tracer_msd(positions), np.dot(v, v) * np.arange(64) ** 2, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(('seed', 'n_frames', 'n_atoms'), [(10, 2, 1), (11, 50, 3), (12, 211, 8), (13, 400, 5)])
def test_collective_msd_matches_brute_force(seed, n_frames, n_atoms):
    positions = random_walk(seed, n_frames, n_atoms)
    msd = collective_msd(positions)
    assert msd.shape == (n_frames,)
    assert_relative(msd, brute_force_collective(positions), rtol=1e-10)


def test_collective_msd_with_charges_matches_brute_force():
    positions = random_walk(14, 180, 5)
    charges = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    assert_relative(collective_msd(positions, charges=charges), brute_force_collective(positions, charges), rtol=1e-10)
    # scaling all charges does not change the normalised collective MSD
    np.testing.assert_allclose(
        collective_msd(positions, charges=3 * charges), collective_msd(positions, charges=charges), rtol=1e-10
    )


def test_collective_msd_of_one_ion_is_its_tracer_msd():
    positions = random_walk(15, 150, 1)
    np.testing.assert_allclose(collective_msd(positions), tracer_msd(positions), rtol=1e-10, atol=1e-12)


def test_collective_msd_of_rigidly_moving_ions():
    """n ions moving together: the summed displacement is n Δr, so the per-ion collective MSD is n × tracer."""
    single = random_walk(16, 100, 1)
    n = 4
    positions = single + np.arange(n)[None, :, None] * 2.0
    np.testing.assert_allclose(collective_msd(positions), n * tracer_msd(positions), rtol=1e-9, atol=1e-12)


def test_collective_agrees_with_tracer_on_average_for_independent_walkers():
    n_trials, n_frames, n_atoms = 400, 100, 6
    rng = np.random.default_rng(17)
    tracer = np.empty((n_trials, n_frames))
    collective = np.empty((n_trials, n_frames))
    for trial in range(n_trials):
        positions = np.cumsum(rng.normal(scale=0.3, size=(n_frames, n_atoms, 3)), axis=0)
        tracer[trial] = tracer_msd(positions)
        collective[trial] = collective_msd(positions)
    expected = 3 * 0.3**2 * np.arange(n_frames)
    for lag in (1, 10, 30):
        difference = collective[:, lag] - tracer[:, lag]
        standard_error = difference.std(ddof=1) / np.sqrt(n_trials)
        assert abs(difference.mean()) < 4 * standard_error
        # and both are unbiased estimates of the true MSD
        assert tracer[:, lag].mean() == pytest.approx(expected[lag], rel=0.05)
        assert collective[:, lag].mean() == pytest.approx(expected[lag], rel=0.1)


def test_msd_errors():
    positions = random_walk(18, 10, 3)
    with pytest.raises(AnalysisError, match='charges must have shape'):
        collective_msd(positions, charges=[1.0, 1.0])
    with pytest.raises(AnalysisError, match='at least 2 frames'):
        tracer_msd(positions[:1])
    with pytest.raises(AnalysisError, match=r'\(n_frames, n_atoms, 3\)'):
        tracer_msd(positions[..., :2])
    positions[3, 1, 2] = np.nan
    with pytest.raises(AnalysisError, match='NaN/inf'):
        tracer_msd(positions)
    with pytest.raises(AnalysisError, match='NaN/inf'):
        collective_msd(positions)


def test_drift_argument_equals_correcting_the_positions_first():
    """The copy-free identity used with ``drift=`` gives the MSD of explicitly corrected positions."""
    from aiida_mlffdiff.analysis import framework_drift, remove_framework_drift

    rng = np.random.default_rng(11)
    positions = np.cumsum(rng.normal(size=(120, 9, 3)), axis=0) + np.linspace(0, 30, 120)[:, None, None]
    mobile = np.array([True, False, True, True, False, False, True, False, True])
    drift = framework_drift(positions, ~mobile)
    corrected = remove_framework_drift(positions, ~mobile)
    np.testing.assert_allclose(
        tracer_msd(positions, mobile, drift=drift), tracer_msd(corrected[:, mobile]), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        collective_msd(positions, mobile, drift=drift), collective_msd(corrected[:, mobile]), rtol=1e-9, atol=1e-9
    )


def test_atom_selection_by_indices_and_contiguous_mask_agree():
    rng = np.random.default_rng(12)
    positions = np.cumsum(rng.normal(size=(60, 6, 3)), axis=0)
    contiguous = np.array([False, True, True, True, False, False])
    np.testing.assert_allclose(tracer_msd(positions, contiguous), tracer_msd(positions, [1, 2, 3]), rtol=1e-12)
    np.testing.assert_allclose(tracer_msd(positions, [1, 2, 3]), tracer_msd(positions[:, 1:4]), rtol=1e-12)
    with pytest.raises(AnalysisError, match='no atom selected'):
        tracer_msd(positions, np.zeros(6, bool))
    with pytest.raises(AnalysisError, match='drift must have shape'):
        tracer_msd(positions, drift=np.zeros((5, 3)))


def test_ensemble_tracer_msd_equals_replica_by_replica(make_positions):
    """Threads over replicas (a generator, fewer workers than replicas) give exactly the per-replica MSDs."""
    from aiida_mlffdiff.analysis import ensemble_tracer_msd, tracer_msd
    from aiida_mlffdiff.analysis.unwrap import unwrap_positions

    from ..conftest import CELL

    replicas = [unwrap_positions(make_positions(seed), CELL) for seed in range(7)]
    drifts = [
        np.random.default_rng(seed).normal(scale=0.05, size=(r.shape[0], 3)).cumsum(0)
        for seed, r in enumerate(replicas)
    ]
    expected = np.stack([tracer_msd(r, np.arange(8), drift=d) for r, d in zip(replicas, drifts, strict=True)])
    got = ensemble_tracer_msd((r for r in replicas), np.arange(8), drifts=iter(drifts), workers=2)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ensemble_tracer_msd(replicas, workers=1), np.stack([tracer_msd(r) for r in replicas]))
    with pytest.raises(AnalysisError, match='no replica'):
        ensemble_tracer_msd([])
    with pytest.raises(AnalysisError, match='same number of frames'):
        ensemble_tracer_msd([replicas[0], replicas[1][:50]])
