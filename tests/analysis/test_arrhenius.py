"""Arrhenius fits of D(T), their errors, extrapolation and the extrapolated conductivity."""

import json

import numpy as np
import pytest

from aiida_mlffdiff.analysis import AnalysisError, fit_arrhenius, nernst_einstein_conductivity

KB_EV_PER_K = 8.617333262e-5  # CODATA 2018
TEMPERATURES = np.array([500.0, 600.0, 700.0, 800.0, 900.0, 1000.0])
EA, D0 = 0.3, 2.0e-3


def arrhenius(temperature, ea=EA, d0=D0):
    return d0 * np.exp(-ea / (KB_EV_PER_K * np.asarray(temperature)))


@pytest.mark.parametrize(('ea', 'd0'), [(0.3, 2.0e-3), (0.05, 1.0e-4), (0.9, 0.5)])
@pytest.mark.parametrize('with_errors', [True, False])
def test_exact_data_recovers_ea_and_d0(ea, d0, with_errors):
    d_values = arrhenius(TEMPERATURES, ea, d0)
    errors = 0.05 * d_values if with_errors else None
    fit = fit_arrhenius(TEMPERATURES, d_values, errors)
    assert fit.Ea_eV == pytest.approx(ea, rel=1e-10)
    assert fit.D0_cm2_s == pytest.approx(d0, rel=1e-10)
    assert fit.n_points == TEMPERATURES.size
    assert fit.weighted is with_errors
    assert fit.reduced_chi2 == pytest.approx(0.0, abs=1e-12)
    assert fit.temperatures_K == TEMPERATURES.tolist()
    assert fit.warnings == []
    for temperature in (300.0, 750.0, 1500.0):
        d_value, (low, high) = fit.predict(temperature)
        assert d_value == pytest.approx(arrhenius(temperature, ea, d0), rel=1e-9)
        assert low <= d_value <= high
    json.dumps(fit.as_dict())


def test_weighted_errors_match_an_independent_weighted_fit():
    rng = np.random.default_rng(1)
    d_values = arrhenius(TEMPERATURES) * np.exp(0.01 * rng.normal(size=TEMPERATURES.size))
    sigma_ln = np.array([0.1, 0.2, 0.05, 0.1, 0.3, 0.1])  # much larger than the scatter: reduced χ² < 1
    x = 1.0 / (KB_EV_PER_K * TEMPERATURES)
    coefficients, covariance = np.polyfit(x, np.log(d_values), 1, w=1.0 / sigma_ln, cov='unscaled')
    fit = fit_arrhenius(TEMPERATURES, d_values, sigma_ln * d_values)
    assert fit.reduced_chi2 < 1
    assert fit.Ea_eV == pytest.approx(-coefficients[0], rel=1e-9)
    assert fit.D0_cm2_s == pytest.approx(np.exp(coefficients[1]), rel=1e-9)
    assert fit.Ea_err_eV == pytest.approx(np.sqrt(covariance[0, 0]), rel=1e-9)  # not scaled down
    assert fit.ln_D0_err == pytest.approx(np.sqrt(covariance[1, 1]), rel=1e-9)


def test_weighted_errors_scaled_up_by_reduced_chi2():
    rng = np.random.default_rng(2)
    d_values = arrhenius(TEMPERATURES) * np.exp(0.3 * rng.normal(size=TEMPERATURES.size))
    sigma_ln = np.full(TEMPERATURES.size, 0.01)  # far too small for the scatter
    x = 1.0 / (KB_EV_PER_K * TEMPERATURES)
    _, covariance = np.polyfit(x, np.log(d_values), 1, w=1.0 / sigma_ln, cov=True)  # scaled by χ²/(n - 2)
    fit = fit_arrhenius(TEMPERATURES, d_values, sigma_ln * d_values)
    assert fit.reduced_chi2 > 4
    assert fit.Ea_err_eV == pytest.approx(np.sqrt(covariance[0, 0]), rel=1e-9)
    assert any('scatter' in warning for warning in fit.warnings)


def test_unweighted_errors_match_residual_covariance():
    rng = np.random.default_rng(3)
    d_values = arrhenius(TEMPERATURES) * np.exp(0.1 * rng.normal(size=TEMPERATURES.size))
    x = 1.0 / (KB_EV_PER_K * TEMPERATURES)
    coefficients, covariance = np.polyfit(x, np.log(d_values), 1, cov=True)
    fit = fit_arrhenius(TEMPERATURES, d_values)
    assert fit.Ea_eV == pytest.approx(-coefficients[0], rel=1e-9)
    assert fit.Ea_err_eV == pytest.approx(np.sqrt(covariance[0, 0]), rel=1e-9)


def test_two_temperatures_with_errors():
    temperatures = np.array([600.0, 900.0])
    d_values = arrhenius(temperatures) * np.array([1.1, 0.95])
    sigma_ln = np.array([0.1, 0.2])
    fit = fit_arrhenius(temperatures, d_values, sigma_ln * d_values)
    x = 1.0 / (KB_EV_PER_K * temperatures)
    # a line through two points: Ea = -Δ ln D / Δx, σ_Ea = sqrt(σ1² + σ2²) / |Δx|
    assert fit.Ea_eV == pytest.approx(-np.diff(np.log(d_values))[0] / np.diff(x)[0], rel=1e-10)
    assert fit.Ea_err_eV == pytest.approx(np.hypot(*sigma_ln) / abs(np.diff(x)[0]), rel=1e-10)
    assert np.isnan(fit.reduced_chi2)


def test_two_temperatures_without_errors_warns():
    temperatures = np.array([600.0, 900.0])
    fit = fit_arrhenius(temperatures, arrhenius(temperatures))
    assert fit.Ea_eV == pytest.approx(EA, rel=1e-10)
    assert np.isnan(fit.Ea_err_eV)
    assert np.isnan(fit.ln_D0_err)
    assert any('no error bar' in warning for warning in fit.warnings)
    d_value, (low, high) = fit.predict(300.0)
    assert d_value == pytest.approx(arrhenius(300.0), rel=1e-9)
    assert np.isnan(low)
    assert np.isnan(high)


def test_ea_error_coverage_over_seeds():
    """With log-normal noise of known size the reported Ea error is honest (never too small)."""
    n_seeds = 300
    truth_300 = arrhenius(300.0)
    within_1, within_3, predicted, predicted_unweighted = 0, 0, 0, 0
    for seed in range(n_seeds):
        rng = np.random.default_rng(100 + seed)
        d_values = arrhenius(TEMPERATURES) * np.exp(0.1 * rng.normal(size=TEMPERATURES.size))
        fit = fit_arrhenius(TEMPERATURES, d_values, 0.1 * d_values)
        deviation = abs(fit.Ea_eV - EA)
        within_1 += deviation < fit.Ea_err_eV
        within_3 += deviation < 3 * fit.Ea_err_eV
        _, (low, high) = fit.predict(300.0)
        predicted += low <= truth_300 <= high
        _, (low, high) = fit_arrhenius(TEMPERATURES, d_values).predict(300.0)
        predicted_unweighted += low <= truth_300 <= high
    assert within_3 / n_seeds >= 0.97
    assert 0.6 <= within_1 / n_seeds <= 0.9  # ~68 %, more because errors are only ever scaled up
    assert 0.92 <= predicted / n_seeds <= 1.0
    assert 0.90 <= predicted_unweighted / n_seeds <= 0.99


def test_predict_interval_widens_away_from_data():
    rng = np.random.default_rng(4)
    d_values = arrhenius(TEMPERATURES) * np.exp(0.1 * rng.normal(size=TEMPERATURES.size))
    fit = fit_arrhenius(TEMPERATURES, d_values, 0.1 * d_values)
    widths = []
    for temperature in (750.0, 500.0, 300.0):
        d_value, (low, high) = fit.predict(temperature)
        assert low < d_value < high
        widths.append(np.log(high / low))
    assert widths[0] < widths[1] < widths[2]
    wider = fit_arrhenius(TEMPERATURES, d_values, 0.1 * d_values, confidence=0.99).predict(300.0)[1]
    assert np.log(wider[1] / wider[0]) > widths[2]


def test_conductivity_matches_nernst_einstein_of_predicted_d():
    rng = np.random.default_rng(5)
    d_values = arrhenius(TEMPERATURES) * np.exp(0.1 * rng.normal(size=TEMPERATURES.size))
    fit = fit_arrhenius(TEMPERATURES, d_values, 0.1 * d_values)
    for temperature, charge in ((300.0, 1.0), (450.0, 2.0)):
        d_value, (low, high) = fit.predict(temperature)
        sigma, (sigma_low, sigma_high) = fit.conductivity(temperature, n_ions=24, volume_A3=1000.0, charge=charge)
        expected = [
            nernst_einstein_conductivity(value, n_ions=24, volume_A3=1000.0, temperature_K=temperature, charge=charge)
            for value in (d_value, low, high)
        ]
        assert sigma == pytest.approx(expected[0], rel=1e-12)
        assert sigma_low == pytest.approx(expected[1], rel=1e-12)
        assert sigma_high == pytest.approx(expected[2], rel=1e-12)
        assert sigma_low < sigma < sigma_high


@pytest.mark.parametrize(
    ('temperatures', 'd_values', 'errors', 'pattern'),
    [
        ([-300.0, 600.0, 900.0], [1e-6, 1e-5, 1e-4], None, 'temperatures must be positive'),
        ([0.0, 600.0, 900.0], [1e-6, 1e-5, 1e-4], None, 'temperatures must be positive'),
        ([300.0, 600.0, 900.0], [1e-6, 0.0, 1e-4], None, 'D must be positive'),
        ([300.0, 600.0, 900.0], [1e-6, -1e-5, 1e-4], None, 'D must be positive'),
        ([600.0], [1e-5], None, '2 or more distinct temperatures'),
        ([600.0, 600.0, 600.0], [1e-5, 2e-5, 3e-5], None, '2 or more distinct temperatures'),
        ([300.0, 600.0, 900.0], [1e-6, 1e-5], None, '3 temperatures but 2 D values'),
        ([300.0, 600.0], [1e-6, np.nan], None, 'NaN/inf'),
        ([300.0, 600.0], [1e-6, 1e-5], [1e-7], 'one positive error per D value'),
        ([300.0, 600.0], [1e-6, 1e-5], [1e-7, 0.0], 'one positive error per D value'),
        ([300.0, 600.0], [1e-6, 1e-5], [1e-7, np.inf], 'NaN/inf'),
        ([[300.0, 600.0]], [1e-6, 1e-5], None, '1-dimensional'),
    ],
)
def test_fit_errors(temperatures, d_values, errors, pattern):
    with pytest.raises(AnalysisError, match=pattern):
        fit_arrhenius(temperatures, d_values, errors)


def test_bad_confidence_and_prediction_temperature():
    with pytest.raises(AnalysisError, match='confidence'):
        fit_arrhenius(TEMPERATURES, arrhenius(TEMPERATURES), confidence=0.0)
    fit = fit_arrhenius(TEMPERATURES, arrhenius(TEMPERATURES))
    for temperature in (0.0, -10.0, np.nan):
        with pytest.raises(AnalysisError, match='temperature must be positive'):
            fit.predict(temperature)
