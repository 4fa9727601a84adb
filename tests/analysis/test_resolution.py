"""An unresolved number is never a result: the verdicts on D, Ea and the extrapolated D and σ."""

import numpy as np
import pytest

from aiida_mlffdiff.analysis import estimate_diffusion, fit_arrhenius
from aiida_mlffdiff.analysis.resolution import (
    MAX_INTERVAL_DECADES,
    arrhenius_unresolved,
    d_unresolved,
    ea_unresolved,
    extrapolation_unresolved,
)

KB_EV_PER_K = 8.617333262e-5
TEMPERATURES_K = np.array([600.0, 700.0, 800.0, 900.0])


def arrhenius_d(temperature, ea=0.3, d0=1e-3):
    return d0 * np.exp(-ea / (KB_EV_PER_K * np.asarray(temperature)))


@pytest.mark.parametrize(
    ('entry', 'expected'),
    [
        ({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1e-7, 'diffusive': True}, None),
        ({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1e-7}, None),  # results stored before `diffusive` existed
        ({'D_cm2_s': -2e-7, 'D_err_cm2_s': 1e-7}, '≤ 0: no diffusion'),
        ({'D_cm2_s': 0.0, 'D_err_cm2_s': 1e-7}, '≤ 0'),
        ({'D_cm2_s': float('nan'), 'D_err_cm2_s': 1e-7}, 'no finite D'),
        ({'D_cm2_s': None}, 'no finite D'),
        ({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1e-7, 'diffusive': False, 'loglog_slope': 0.31}, 'slope 0.31'),
        ({'D_cm2_s': 1e-5, 'D_err_cm2_s': None}, 'no error bar'),
        ({'D_cm2_s': 1e-5, 'D_err_cm2_s': 1.2e-5}, 'reaches zero'),
    ],
)
def test_d_verdicts(entry, expected):
    reason = d_unresolved(entry)
    if expected is None:
        assert reason is None
    else:
        assert expected in reason


def test_a_subdiffusive_msd_estimated_by_the_core_is_unresolved():
    """MSD ∝ t^0.4 (ions caged, slow creep): D > 0, but the estimator's own `diffusive` flag makes it unresolved."""
    time = np.linspace(0.0, 20.0, 401)
    rng = np.random.default_rng(0)
    msd = 2.0 * time**0.4 * (1 + 0.01 * rng.standard_normal((8, time.size)))
    estimate = estimate_diffusion(time, msd, n_ions=24).as_dict()
    assert estimate['D_cm2_s'] > 0
    assert estimate['diffusive'] is False
    assert 'not diffusive' in d_unresolved(estimate)
    diffusive = estimate_diffusion(time, 0.06 * time * (1 + 0.01 * rng.standard_normal((8, time.size))), n_ions=24)
    assert d_unresolved(diffusive.as_dict()) is None


def test_negative_ea_and_its_sigma_are_unresolved():
    """D falling with T (the demo's Ea = −0.21 eV): Ea, D(300 K) and σ(300 K) are all unresolved, and why."""
    d_values = arrhenius_d(TEMPERATURES_K, ea=-0.21)
    fit = fit_arrhenius(TEMPERATURES_K, d_values, 0.05 * d_values)
    d_value, interval = fit.predict(300.0)
    output = {**fit.as_dict(), 'D_at_T_cm2_s': d_value, 'D_interval_cm2_s': list(interval)}
    output.update(sigma_at_T_mS_cm=7.5e5, sigma_interval_mS_cm=[7.0e5, 8.0e5])
    verdicts = arrhenius_unresolved(output)
    assert verdicts['Ea'] == 'Ea = -0.21 eV ≤ 0: D does not rise with T'
    assert verdicts['D_at_T'].startswith('D rests on an unresolved Ea')
    assert verdicts['sigma_at_T'].startswith('σ rests on an unresolved Ea')


def test_a_well_determined_fit_is_resolved_and_a_wide_extrapolation_is_not():
    d_values = arrhenius_d(TEMPERATURES_K)
    tight = fit_arrhenius(TEMPERATURES_K, d_values, 0.01 * d_values)
    d_value, interval = tight.predict(300.0)
    output = {**tight.as_dict(), 'D_at_T_cm2_s': d_value, 'D_interval_cm2_s': list(interval)}
    assert arrhenius_unresolved(output) == {'Ea': None, 'D_at_T': None, 'sigma_at_T': None}
    # the same law through two close temperatures with 30 % errors: Ea is positive, but 300 K is far away
    pair = TEMPERATURES_K[-2:]
    loose = fit_arrhenius(pair, arrhenius_d(pair), 0.3 * arrhenius_d(pair))
    d_value, (low, high) = loose.predict(300.0)
    assert np.log10(high / low) > MAX_INTERVAL_DECADES
    reason = extrapolation_unresolved(d_value, [low, high], ea_unresolved(loose.as_dict()), 'D')
    assert reason is not None
    assert 'decades' in reason or 'unresolved Ea' in reason


def test_ea_through_an_unresolved_point_is_unresolved():
    d_values = arrhenius_d(TEMPERATURES_K)
    fit = fit_arrhenius(TEMPERATURES_K, d_values, 0.01 * d_values).as_dict()
    points = [
        {'D_cm2_s': d, 'D_err_cm2_s': 0.01 * d, 'diffusive': t != 600.0}
        for t, d in zip(TEMPERATURES_K, d_values, strict=True)
    ]
    assert ea_unresolved(fit, [d_unresolved(p) for p in points]).startswith('the fit uses an unresolved D at 600 K')
    assert arrhenius_unresolved(fit, points)['Ea'].startswith('the fit uses an unresolved D at 600 K')


@pytest.mark.parametrize(
    ('fit', 'expected'),
    [
        ({'Ea_eV': 0.3, 'Ea_err_eV': 0.35}, 'as large as Ea'),
        ({'Ea_eV': 0.3, 'Ea_err_eV': float('nan')}, 'no error bar'),
        ({'Ea_eV': float('inf'), 'Ea_err_eV': 0.1}, 'no finite Ea'),
    ],
)
def test_ea_verdicts(fit, expected):
    assert expected in ea_unresolved(fit)
