"""Einstein fits, the automatic fit window and its diagnostics."""

import numpy as np
import pytest

from aiida_mlffdiff.analysis import AnalysisError, auto_fit_window, fit_einstein, loglog_slope
from aiida_mlffdiff.analysis.einstein import local_loglog_slope, window_sensitivity

A2_PS_IN_CM2_S = 1e-4  # 1 Å²/ps = 1e-16 cm² / 1e-12 s


def caged_msd(time, d_a2_ps, amplitude, tau):
    return 6 * d_a2_ps * time + 6 * amplitude**2 * (1 - np.exp(-time / tau))


def caged_loglog_slope(time, d_a2_ps, amplitude, tau):
    """Exact d ln MSD / d ln t of :func:`caged_msd`."""
    derivative = 6 * d_a2_ps + 6 * amplitude**2 / tau * np.exp(-time / tau)
    return time * derivative / caged_msd(time, d_a2_ps, amplitude, tau)


@pytest.mark.parametrize(('d_a2_ps', 'intercept'), [(0.05, 0.7), (2.5, -1.3), (1e-3, 0.0)])
def test_straight_line_gives_exact_d(d_a2_ps, intercept):
    time = np.arange(101) * 0.1
    fit = fit_einstein(time, 6 * d_a2_ps * time + intercept, (2.0, 8.0))
    assert fit.D_cm2_s == pytest.approx(d_a2_ps * A2_PS_IN_CM2_S, rel=1e-10)
    assert fit.slope_A2_per_ps == pytest.approx(6 * d_a2_ps, rel=1e-10)
    assert fit.intercept_A2 == pytest.approx(intercept, abs=1e-10)
    assert fit.fit_start_ps == pytest.approx(2.0)
    assert fit.fit_end_ps == pytest.approx(8.0)
    assert fit.n_points == 61
    data = fit.as_dict()
    assert data['D_cm2_s'] == fit.D_cm2_s
    assert set(data) >= {'D_cm2_s', 'intercept_A2', 'fit_start_ps', 'fit_end_ps', 'n_points', 'loglog_slope'}


def test_only_window_points_are_fitted():
    time = np.arange(101) * 0.1
    msd = 6 * 0.1 * time
    msd[:20] = 50.0  # garbage outside the window must not matter
    msd[81:] = -3.0
    fit = fit_einstein(time, msd, (2.0, 8.0))
    assert fit.D_cm2_s == pytest.approx(0.1 * A2_PS_IN_CM2_S, rel=1e-10)
    assert fit.intercept_A2 == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize('exponent', [0.5, 1.0, 1.7])
def test_loglog_slope_of_a_power_law(exponent):
    time = np.arange(200) * 0.05
    msd = 3.0 * time**exponent
    assert loglog_slope(time, msd, (0.5, 9.0)) == pytest.approx(exponent, rel=1e-10)
    local = local_loglog_slope(time, msd)
    assert np.isnan(local[0])  # t = 0
    finite = np.isfinite(local)
    assert finite.sum() > 100
    np.testing.assert_allclose(local[finite], exponent, rtol=1e-3)


def test_auto_window_skips_the_caged_regime():
    d_a2_ps, amplitude, tau = 0.1, 0.3, 0.2
    time = np.arange(2000) * 0.02
    msd = caged_msd(time, d_a2_ps, amplitude, tau)
    exact = np.r_[0.0, caged_loglog_slope(time[1:], d_a2_ps, amplitude, tau)]
    deepest = time[1 + np.argmin(exact[1:])]
    assert exact.min() < 0.6  # there really is a caged regime
    settled = time[np.flatnonzero(exact < 0.9)[-1] + 1]  # from here on the exact slope stays >= 0.9

    (start, end), diffusive = auto_fit_window(time, msd)
    assert diffusive
    assert start > deepest
    assert settled / 1.5 <= start <= 1.5 * settled  # not in the cage, but not needlessly late either
    window = (time >= start) & (time <= end)
    assert exact[window].min() >= 0.89
    assert end <= 0.5 * time[-1]
    assert end > 0.5 * time[-1] - 0.02 - 1e-9
    fit = fit_einstein(time, msd, (start, end))
    assert fit.D_cm2_s == pytest.approx(d_a2_ps * A2_PS_IN_CM2_S, rel=0.01)
    assert fit.n_points >= 5

    (start_30, end_30), _ = auto_fit_window(time, msd, max_fraction=0.3)
    assert end_30 <= 0.3 * time[-1]
    assert start_30 == pytest.approx(start)
    (start_loose, _), _ = auto_fit_window(time, msd, min_loglog_slope=0.8)
    assert start_loose < start
    assert caged_loglog_slope(start_loose, d_a2_ps, amplitude, tau) >= 0.79


def test_auto_window_for_a_straight_line_starts_early():
    time = np.arange(200) * 0.1
    (start, end), diffusive = auto_fit_window(time, 6 * 0.3 * time)
    assert diffusive
    assert start <= 0.5
    assert end <= 0.5 * time[-1]


def test_auto_window_straight_line_with_max_fraction_one():
    time = np.arange(200) * 0.1
    (start, end), diffusive = auto_fit_window(time, 6 * 0.3 * time, max_fraction=1.0)
    assert diffusive
    assert start < 0.5 * end


@pytest.mark.parametrize('exponent', [0.5, 0.7])
def test_sub_diffusive_curve_is_flagged(exponent):
    time = np.arange(400) * 0.05
    msd = 2.0 * time**exponent
    (start, end), diffusive = auto_fit_window(time, msd)
    assert not diffusive
    assert 0 < start < end <= 0.5 * time[-1]
    fit = fit_einstein(time, msd, (start, end))
    assert fit.loglog_slope == pytest.approx(exponent, rel=1e-6)


def test_window_errors():
    time = np.arange(50) * 0.1
    msd = 0.6 * time
    with pytest.raises(AnalysisError, match='outside the trajectory lags'):
        fit_einstein(time, msd, (1.0, 10.0))
    with pytest.raises(AnalysisError, match='outside the trajectory lags'):
        fit_einstein(time, msd, (-1.0, 3.0))
    with pytest.raises(AnalysisError, match='must be before its end'):
        fit_einstein(time, msd, (3.0, 3.0))
    with pytest.raises(AnalysisError, match='must be before its end'):
        fit_einstein(time, msd, (3.0, 2.0))
    with pytest.raises(AnalysisError, match='holds 4 MSD points, at least 5'):
        fit_einstein(time, msd, (1.0, 1.3))
    # exactly 5 points is enough
    assert fit_einstein(time, msd, (1.0, 1.4)).n_points == 5


def test_msd_input_errors():
    time = np.arange(50) * 0.1
    msd = 0.6 * time
    with pytest.raises(AnalysisError, match='49 lags but time_ps has 50'):
        fit_einstein(time, msd[:-1], (1.0, 3.0))
    with pytest.raises(AnalysisError, match='strictly increasing'):
        fit_einstein(time[::-1], msd, (1.0, 3.0))
    with pytest.raises(AnalysisError, match='must not be negative'):
        fit_einstein(time - 1.0, msd, (1.0, 3.0))
    with pytest.raises(AnalysisError, match='one MSD curve'):
        fit_einstein(time, np.vstack([msd, msd]), (1.0, 3.0))
    bad = msd.copy()
    bad[7] = np.nan
    with pytest.raises(AnalysisError, match='msd_A2 contains 1 NaN/inf'):
        fit_einstein(time, bad, (1.0, 3.0))
    with pytest.raises(AnalysisError, match='at least 20'):
        auto_fit_window(time[:15], msd[:15])
    with pytest.raises(AnalysisError, match='max_fraction'):
        auto_fit_window(time, msd, max_fraction=0.0)
    with pytest.raises(AnalysisError, match='max_fraction'):
        auto_fit_window(time, msd, max_fraction=1.5)


def test_window_sensitivity_of_a_straight_line_is_zero():
    time = np.arange(101) * 0.1
    result = window_sensitivity(time, 6 * 0.2 * time + 0.4, (1.0, 10.0))
    assert result['relative_change'] < 1e-9
    assert result['D_first_half_cm2_s'] == pytest.approx(0.2 * A2_PS_IN_CM2_S, rel=1e-9)
    assert result['D_second_half_cm2_s'] == pytest.approx(0.2 * A2_PS_IN_CM2_S, rel=1e-9)


def test_window_sensitivity_of_a_parabola():
    """On a uniform grid symmetric about c the OLS slope of t² is exactly 2c, so every number is known."""
    time = np.arange(101) * 0.1
    result = window_sensitivity(time, time**2, (1.0, 10.0))
    # window [1, 10], middle 5.5: slopes 11 (whole), 6.5 (first half), 15.5 (second half)
    assert result['D_first_half_cm2_s'] == pytest.approx(6.5 / 6 * A2_PS_IN_CM2_S, rel=1e-9)
    assert result['D_second_half_cm2_s'] == pytest.approx(15.5 / 6 * A2_PS_IN_CM2_S, rel=1e-9)
    assert result['relative_change'] == pytest.approx(4.5 / 11, rel=1e-9)
    assert result['relative_change'] > 0.2


def test_window_sensitivity_too_short_halves():
    time = np.arange(101) * 0.1
    result = window_sensitivity(time, time**2, (1.0, 1.6))  # 7 points: halves of 4 are too short
    assert np.isnan(result['D_first_half_cm2_s'])
    assert np.isnan(result['D_second_half_cm2_s'])
    assert np.isnan(result['relative_change'])
