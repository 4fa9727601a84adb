"""Nernst–Einstein conductivity and the Haven ratio against hand calculations in SI units."""

import numpy as np
import pytest

from aiida_mlffdiff.analysis import AnalysisError, haven_ratio, nernst_einstein_conductivity

E_CHARGE = 1.602176634e-19  # C
KB = 1.380649e-23  # J/K


def by_hand_ms_per_cm(n_ions, volume_a3, d_cm2_s, temperature, charge=1.0, haven=1.0):
    """σ = n (z e)² D / (H_R kB T) in SI (S/m), then 1 S/m = 1e-2 S/cm = 10 mS/cm."""
    density_per_m3 = n_ions / (volume_a3 * 1e-30)
    d_m2_s = d_cm2_s * 1e-4
    sigma_s_per_m = density_per_m3 * (charge * E_CHARGE) ** 2 * d_m2_s / (haven * KB * temperature)
    return sigma_s_per_m * 10.0


def test_lithium_example_by_hand():
    sigma = nernst_einstein_conductivity(1e-6, n_ions=24, volume_A3=1000.0, temperature_K=300.0)
    assert sigma == pytest.approx(by_hand_ms_per_cm(24, 1000.0, 1e-6, 300.0), rel=1e-12)
    # n = 2.4e28 m⁻³, e² = 2.567e-38 C², D = 1e-10 m²/s, kB T = 4.142e-21 J → 14.87 S/m = 148.7 mS/cm
    assert sigma == pytest.approx(148.7, rel=1e-3)


def test_scaling_with_d_temperature_charge_and_haven_ratio():
    base = dict(n_ions=24, volume_A3=1000.0, temperature_K=300.0)
    reference = nernst_einstein_conductivity(1e-6, **base)
    assert nernst_einstein_conductivity(3e-6, **base) == pytest.approx(3 * reference, rel=1e-12)
    assert nernst_einstein_conductivity(1e-6, **{**base, 'temperature_K': 600.0}) == pytest.approx(
        reference / 2, rel=1e-12
    )
    assert nernst_einstein_conductivity(1e-6, **base, charge=2.0) == pytest.approx(4 * reference, rel=1e-12)
    assert nernst_einstein_conductivity(1e-6, **base, charge=-1.0) == pytest.approx(reference, rel=1e-12)
    assert nernst_einstein_conductivity(1e-6, **base, haven_ratio=0.4) == pytest.approx(reference / 0.4, rel=1e-12)
    assert nernst_einstein_conductivity(1e-6, **{**base, 'n_ions': 48}) == pytest.approx(2 * reference, rel=1e-12)
    assert nernst_einstein_conductivity(1e-6, **{**base, 'volume_A3': 500.0}) == pytest.approx(2 * reference, rel=1e-12)


@pytest.mark.parametrize(
    ('n_ions', 'volume', 'd_value', 'temperature', 'charge', 'haven'),
    [(8, 512.0, 3.2e-5, 1200.0, 1.0, 1.0), (60, 2345.6, 4e-8, 450.0, 2.0, 0.3), (1, 10.0, 1.0, 1.0, 3.0, 2.0)],
)
def test_against_hand_calculation(n_ions, volume, d_value, temperature, charge, haven):
    sigma = nernst_einstein_conductivity(
        d_value, n_ions=n_ions, volume_A3=volume, temperature_K=temperature, charge=charge, haven_ratio=haven
    )
    assert sigma == pytest.approx(by_hand_ms_per_cm(n_ions, volume, d_value, temperature, charge, haven), rel=1e-12)


def test_arrays_of_d_and_temperature():
    d_values = np.array([1e-7, 1e-6, 1e-5])
    temperatures = np.array([300.0, 600.0, 900.0])
    sigma = nernst_einstein_conductivity(d_values, n_ions=10, volume_A3=800.0, temperature_K=temperatures)
    assert sigma.shape == (3,)
    expected = [by_hand_ms_per_cm(10, 800.0, d, t) for d, t in zip(d_values, temperatures, strict=True)]
    np.testing.assert_allclose(sigma, expected, rtol=1e-12)


def test_haven_ratio():
    assert haven_ratio(1e-6, 2e-6) == pytest.approx(0.5, rel=1e-15)
    assert haven_ratio(3e-6, 1e-6) == pytest.approx(3.0, rel=1e-15)
    # dividing the tracer conductivity by H_R gives the conductivity of D_σ
    tracer, collective = 1e-6, 2.5e-6
    kwargs = dict(n_ions=24, volume_A3=1000.0, temperature_K=300.0)
    assert nernst_einstein_conductivity(tracer, **kwargs, haven_ratio=haven_ratio(tracer, collective)) == pytest.approx(
        nernst_einstein_conductivity(collective, **kwargs), rel=1e-12
    )
    with pytest.raises(AnalysisError, match='D_sigma_cm2_s must be a positive number'):
        haven_ratio(1e-6, 0.0)
    with pytest.raises(AnalysisError, match='D_sigma_cm2_s must be a positive number'):
        haven_ratio(1e-6, -1e-6)


@pytest.mark.parametrize(
    ('kwargs', 'pattern'),
    [
        (dict(n_ions=0), 'n_ions must be at least 1'),
        (dict(volume_A3=0.0), 'volume_A3 must be a positive number'),
        (dict(volume_A3=np.nan), 'volume_A3 must be a positive number'),
        (dict(temperature_K=0.0), 'temperature_K must be positive'),
        (dict(temperature_K=[300.0, -5.0]), 'temperature_K must be positive'),
        (dict(temperature_K=np.inf), 'temperature_K must be positive'),
        (dict(haven_ratio=0.0), 'haven_ratio must be a positive number'),
    ],
)
def test_conductivity_errors(kwargs, pattern):
    arguments = dict(n_ions=24, volume_A3=1000.0, temperature_K=300.0) | kwargs
    with pytest.raises(AnalysisError, match=pattern):
        nernst_einstein_conductivity(1e-6, **arguments)
