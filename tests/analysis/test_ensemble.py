"""D with its error bar from replicas (ols) or one trajectory (gls), end to end on synthetic Brownian motion."""

import numpy as np
import pytest
from scipy import stats

from aiida_mlffdiff.analysis import AnalysisError, estimate_diffusion, fit_einstein, msd_from_positions, tracer_msd
from aiida_mlffdiff.analysis.synthetic import brownian_trajectory

TRICLINIC = np.array([[12.0, 0.0, 0.0], [4.0, 11.0, 0.0], [2.0, 3.0, 10.0]])
MASSES = {'Li': 6.94, 'Na': 22.99, 'O': 16.0, 'P': 30.97}


def replica_msds(symbols, diffusion, species, *, n_replicas, n_frames, dt, seed, masses=None, **kwargs):
    """Wrapped synthetic trajectories → MsdResult of ``species`` for every replica."""
    results = []
    for replica in range(n_replicas):
        positions = brownian_trajectory(
            TRICLINIC, symbols, diffusion, n_frames=n_frames, frame_interval_ps=dt, seed=seed + replica, **kwargs
        )
        fractional = positions @ np.linalg.inv(TRICLINIC)
        assert fractional.min() >= 0  # really wrapped
        assert fractional.max() < 1
        results.append(msd_from_positions(positions, TRICLINIC, symbols, species, dt, masses=masses))
    return results


def stack(results):
    return (
        results[0].time_ps,
        np.array([r.msd_A2 for r in results]),
        np.array([r.collective_msd_A2 for r in results]),
    )


def test_two_mobile_species_recovered_within_three_standard_errors():
    symbols = ['Li'] * 8 + ['Na'] * 8 + ['O'] * 12 + ['P'] * 4
    diffusion = {'Li': 1.0e-5, 'Na': 3.0e-6}
    for species, d_true in diffusion.items():
        # The drift correction uses every other species as the framework; give the other mobile species no
        # weight so that the framework centre of mass is that of O and P only.
        masses = [0.0 if s in diffusion else MASSES[s] for s in symbols]
        results = replica_msds(
            symbols,
            diffusion,
            species,
            n_replicas=6,
            n_frames=400,
            dt=0.1,
            seed=100,
            masses=masses,
            rattle_amplitude_A=0.2,
            rattle_time_ps=0.1,
            framework_amplitude_A=0.1,
            drift_A_per_ps=(0.3, -0.2, 0.15),
        )
        time, msd, collective = stack(results)
        estimate = estimate_diffusion(time, msd, n_ions=results[0].n_ions, collective_msd_A2=collective)
        assert estimate.estimator == 'ols'
        assert estimate.n_replicas == 6
        assert estimate.n_ions == 8
        assert estimate.fit_window_auto
        assert estimate.diffusive
        assert 0 < estimate.fit_start_ps < estimate.fit_end_ps <= 0.5 * time[-1]
        assert estimate.D_err_cm2_s > 0
        assert estimate.relative_error < 0.3  # the test is not vacuous
        assert abs(estimate.D_cm2_s - d_true) < 3 * estimate.D_err_cm2_s, species
        low, high = estimate.D_interval_cm2_s
        assert low < estimate.D_cm2_s < high
        # same estimate from the gls estimator
        gls = estimate_diffusion(time, msd, n_ions=8, estimator='gls')
        assert abs(gls.D_cm2_s - d_true) < 3 * gls.D_err_cm2_s, species
    # the two species really differ: their D are far apart compared with the errors
    assert diffusion['Li'] / diffusion['Na'] > 3


def calibration_trial(trial, *, n_replicas=5, n_frames=200, n_ions=8, dt=0.1, d_true=1.0e-5):
    """Unwrapped walks (no framework): per-replica tracer MSD of one trial."""
    return np.array(
        [
            tracer_msd(
                brownian_trajectory(
                    np.eye(3) * 20.0,
                    ['Li'] * n_ions,
                    {'Li': d_true},
                    n_frames=n_frames,
                    frame_interval_ps=dt,
                    seed=10_000 + 100 * trial + replica,
                    wrap=False,
                )
            )
            for replica in range(n_replicas)
        ]
    )


@pytest.mark.slow
def test_interval_calibration():
    """Over many seeded trials the 95 % interval covers the true D in about 95 % of them."""
    n_trials, d_true, dt = 250, 1.0e-5, 0.1
    time = np.arange(200) * dt
    window = (1.0, 5.0)
    hits = {'ols': 0, 'gls': 0, 'gls single replica': 0}
    for trial in range(n_trials):
        msd = calibration_trial(trial, dt=dt, d_true=d_true)
        for key, estimator, curves in (('ols', 'ols', msd), ('gls', 'gls', msd), ('gls single replica', 'gls', msd[0])):
            estimate = estimate_diffusion(time, curves, n_ions=8, window=window, estimator=estimator, n_bootstrap=200)
            low, high = estimate.D_interval_cm2_s
            hits[key] += low <= d_true <= high
    coverage = {key: value / n_trials for key, value in hits.items()}
    for key, value in coverage.items():
        assert 0.90 <= value <= 0.99, (key, coverage)


def test_gls_error_scales_with_number_of_ions_and_replicas():
    msd = calibration_trial(0)
    time = np.arange(200) * 0.1
    base = estimate_diffusion(time, msd[0], n_ions=4, window=(1.0, 5.0), estimator='gls')
    more_ions = estimate_diffusion(time, msd[0], n_ions=16, window=(1.0, 5.0), estimator='gls')
    # Four distinct curves with the same mean (identical ones would be counted once, as copies)
    offsets = np.array([[-1.5], [-0.5], [0.5], [1.5]]) * 1e-3
    more_replicas = estimate_diffusion(
        time, np.repeat(msd[:1], 4, axis=0) + offsets, n_ions=4, window=(1.0, 5.0), estimator='gls'
    )
    assert more_ions.D_cm2_s == pytest.approx(base.D_cm2_s, rel=1e-12)
    assert more_ions.D_err_cm2_s == pytest.approx(base.D_err_cm2_s / 2, rel=1e-9)
    assert more_replicas.D_err_cm2_s == pytest.approx(base.D_err_cm2_s / 2, rel=1e-9)
    assert base.estimator == 'gls'
    assert base.n_replicas == 1
    assert base.D_replicas_cm2_s == pytest.approx([fit_einstein(time, msd[0], (1.0, 5.0)).D_cm2_s], rel=1e-9)
    assert base.D_err_bootstrap_cm2_s is None
    z = stats.norm.ppf(0.975)
    low, high = base.D_interval_cm2_s
    assert low == pytest.approx(base.D_cm2_s - z * base.D_err_cm2_s, rel=1e-9)
    assert high == pytest.approx(base.D_cm2_s + z * base.D_err_cm2_s, rel=1e-9)


def test_gls_on_exact_line_recovers_slope():
    time = np.arange(300) * 0.05
    estimate = estimate_diffusion(time, 6 * 0.25 * time + 0.8, n_ions=10, window=(2.0, 12.0), estimator='gls')
    assert estimate.D_cm2_s == pytest.approx(0.25e-4, rel=1e-6)
    assert estimate.intercept_A2 == pytest.approx(0.8, rel=1e-5)


def test_ols_statistics_over_twenty_replicas():
    n_replicas, dt = 20, 0.1
    time = np.arange(200) * dt
    msd = calibration_trial(3, n_replicas=n_replicas)
    estimate = estimate_diffusion(time, msd, n_ions=8, window=(1.0, 8.0), estimator='ols')
    replicas = np.array(estimate.D_replicas_cm2_s)
    assert replicas.size == n_replicas
    # each replica's D is its own Einstein fit
    for curve, value in zip(msd, replicas, strict=True):
        assert value == pytest.approx(fit_einstein(time, curve, (1.0, 8.0)).D_cm2_s, rel=1e-9)
    # the pooled OLS fit is the mean of the replica fits (the fit is linear in the MSD)
    assert estimate.D_cm2_s == pytest.approx(replicas.mean(), rel=1e-10)
    assert estimate.D_cm2_s == pytest.approx(fit_einstein(time, msd.mean(axis=0), (1.0, 8.0)).D_cm2_s, rel=1e-10)
    standard_error = replicas.std(ddof=1) / np.sqrt(n_replicas)
    assert estimate.D_err_cm2_s == pytest.approx(standard_error, rel=1e-10)
    half = stats.t.ppf(0.975, n_replicas - 1) * standard_error
    assert estimate.D_interval_cm2_s == pytest.approx((replicas.mean() - half, replicas.mean() + half), rel=1e-10)
    # the bootstrap over whole replicas agrees with the spread
    ratio = estimate.D_err_bootstrap_cm2_s / estimate.D_err_cm2_s
    assert 1 / 1.5 < ratio < 1.5
    low, high = estimate.D_interval_bootstrap_cm2_s
    assert low < estimate.D_cm2_s < high
    assert (high - low) / (2 * half) == pytest.approx(1.0, abs=0.5)
    # a 68 % interval is narrower than the 95 % one
    narrow = estimate_diffusion(time, msd, n_ions=8, window=(1.0, 8.0), estimator='ols', confidence=0.68)
    assert narrow.D_interval_cm2_s[1] - narrow.D_interval_cm2_s[0] < 2 * half
    # the estimate is serialisable and self-consistent
    data = estimate.as_dict()
    assert data['relative_error'] == pytest.approx(standard_error / estimate.D_cm2_s)
    assert isinstance(data['D_interval_cm2_s'], list)


def test_auto_estimator_choice():
    time = np.arange(200) * 0.1
    msd = calibration_trial(4, n_replicas=2)
    ensemble = estimate_diffusion(time, msd, n_ions=8)
    assert ensemble.estimator == 'ols'
    assert '2 independent replicas' in ensemble.estimator_reason
    # One trajectory with no ion groups: the random-walk GLS is all that is left, and it says so.
    for curves in (msd[0], msd[:1]):
        single = estimate_diffusion(time, curves, n_ions=8)
        assert single.estimator == 'gls'
        assert 'without its ion groups' in single.estimator_reason
        assert any('assumes independent Gaussian walkers' in warning for warning in single.warnings)
    requested = estimate_diffusion(time, msd[0], n_ions=8, estimator='gls')
    assert requested.estimator_reason.startswith('requested')
    assert not any('Gaussian walkers' in warning for warning in requested.warnings)


def test_identical_replicas_are_counted_once():
    """The same trajectory twice is one sample: warned, counted once, never a zero error bar."""
    time = np.arange(200) * 0.1
    msd = calibration_trial(6, n_replicas=3)
    doubled = np.concatenate([msd, msd[:1]])
    estimate = estimate_diffusion(time, doubled, n_ions=8, window=(1.0, 5.0))
    reference = estimate_diffusion(time, msd, n_ions=8, window=(1.0, 5.0))
    assert estimate.n_replicas == 3
    assert estimate.D_cm2_s == reference.D_cm2_s
    assert estimate.D_err_cm2_s == reference.D_err_cm2_s
    assert any('replica 3 has exactly the MSD of replica 0' in warning for warning in estimate.warnings)
    # Two copies of one trajectory: a single trajectory, not a two-replica ensemble with D ± 0
    copies = estimate_diffusion(time, np.stack([msd[0], msd[0]]), n_ions=8, window=(1.0, 5.0))
    assert copies.n_replicas == 1
    assert copies.estimator == 'gls'
    assert copies.D_err_cm2_s > 0


def test_haven_ratio_of_independent_ions_is_one():
    symbols = ['Li'] * 16 + ['O'] * 8
    results = replica_msds(symbols, {'Li': 1.0e-5}, 'Li', n_replicas=16, n_frames=300, dt=0.1, seed=500)
    time, msd, collective = stack(results)
    estimate = estimate_diffusion(time, msd, n_ions=16, window=(2.0, 10.0), collective_msd_A2=collective)
    assert estimate.D_sigma_cm2_s > 0
    assert estimate.D_sigma_err_cm2_s > 0
    assert estimate.haven_ratio == pytest.approx(estimate.D_cm2_s / estimate.D_sigma_cm2_s)
    assert 0 < estimate.haven_ratio_err < 0.5
    assert abs(estimate.haven_ratio - 1) < 3 * estimate.haven_ratio_err
    # D_sigma itself is an estimate of the same D
    assert abs(estimate.D_sigma_cm2_s - 1.0e-5) < 3 * estimate.D_sigma_err_cm2_s


def test_sub_diffusive_msd_is_flagged():
    time = np.arange(200) * 0.1
    msd = np.array([2.0 * time**0.5, 2.1 * time**0.5])
    estimate = estimate_diffusion(time, msd, n_ions=4)
    assert not estimate.diffusive
    assert estimate.loglog_slope == pytest.approx(0.5, rel=1e-6)
    assert any('diffusive' in warning for warning in estimate.warnings)
    fixed = estimate_diffusion(time, msd, n_ions=4, window=(0.5, 9.0))
    assert not fixed.diffusive
    assert any('log-log slope' in warning for warning in fixed.warnings)
    assert any('halves of the fit window' in warning for warning in fixed.warnings)


def test_clean_line_has_no_warnings():
    time = np.arange(200) * 0.1
    msd = np.array([0.6 * time, 0.66 * time, 0.54 * time])
    estimate = estimate_diffusion(time, msd, n_ions=4)
    assert estimate.diffusive
    assert estimate.warnings == []
    assert estimate.D_cm2_s == pytest.approx(0.1e-4, rel=1e-10)
    assert estimate.window_sensitivity['relative_change'] < 1e-9


def test_non_positive_d_is_warned():
    time = np.arange(100) * 0.1
    msd = np.array([5.0 - 0.1 * time, 5.0 - 0.12 * time])
    estimate = estimate_diffusion(time, msd, n_ions=4, window=(1.0, 5.0))
    assert estimate.D_cm2_s < 0
    assert any('not positive' in warning for warning in estimate.warnings)


def test_estimate_errors():
    time = np.arange(100) * 0.1
    msd = np.array([0.6 * time, 0.62 * time])
    with pytest.raises(AnalysisError, match='ion-groups'):
        estimate_diffusion(time, msd[0], n_ions=4, estimator='ols')
    with pytest.raises(AnalysisError, match='needs the MSD of groups of ions'):
        estimate_diffusion(time, msd[0], n_ions=4, estimator='ion-groups')
    with pytest.raises(AnalysisError, match='ion_group_msd_A2 must have shape'):
        estimate_diffusion(time, msd, n_ions=4, ion_group_msd_A2=msd)
    with pytest.raises(AnalysisError, match='estimator must be one of auto, ols, ion-groups, gls'):
        estimate_diffusion(time, msd, n_ions=4, estimator='bayes')
    with pytest.raises(AnalysisError, match='n_ions must be at least 1'):
        estimate_diffusion(time, msd, n_ions=0)
    bad = msd.copy()
    bad[1, 40] = np.nan
    with pytest.raises(AnalysisError, match='NaN/inf'):
        estimate_diffusion(time, bad, n_ions=4)
    with pytest.raises(AnalysisError, match='collective_msd_A2 must have the shape'):
        estimate_diffusion(time, msd, n_ions=4, collective_msd_A2=msd[:1])
    with pytest.raises(AnalysisError, match='lags but time_ps has'):
        estimate_diffusion(time, msd, n_ions=4, collective_msd_A2=msd[:, :-1])
    with pytest.raises(AnalysisError, match='confidence'):
        estimate_diffusion(time, msd, n_ions=4, confidence=1.0)
    with pytest.raises(AnalysisError, match=r'shape \(n_replicas, n_lags\)'):
        estimate_diffusion(time, msd[None], n_ions=4)
    with pytest.raises(AnalysisError, match='uniform grid starting at 0'):
        estimate_diffusion(time + 0.1, msd, n_ions=4, window=(1.0, 5.0), estimator='gls')
    with pytest.raises(AnalysisError, match='uniform grid starting at 0'):
        estimate_diffusion(time**1.1, msd, n_ions=4, window=(1.0, 5.0), estimator='gls')


@pytest.mark.filterwarnings('ignore::RuntimeWarning')
def test_gls_window_from_zero():
    time = np.arange(200) * 0.1
    msd = calibration_trial(5, n_replicas=1)[0]
    try:
        estimate = estimate_diffusion(time, msd, n_ions=8, window=(0.0, 5.0), estimator='gls')
    except AnalysisError:
        return  # a clear refusal would be fine
    assert np.isfinite(estimate.D_cm2_s)
    assert np.isfinite(estimate.D_err_cm2_s)
