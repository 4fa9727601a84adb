"""Nernst–Einstein conductivity and the Haven ratio."""

from __future__ import annotations

import numpy as np

from .errors import AnalysisError
from .units import A3_TO_CM3, ELEMENTARY_CHARGE_C, KB_J_PER_K
from .validation import positive


def nernst_einstein_conductivity(
    D_cm2_s,
    *,
    n_ions: int,
    volume_A3: float,
    temperature_K,
    charge: float = 1.0,
    haven_ratio: float = 1.0,
):
    """Ionic conductivity σ (mS/cm) = n (z e)² D / (H_R k_B T), with n = n_ions / V.

    :param D_cm2_s: tracer diffusion coefficient(s) in cm²/s (scalar or array).
    :param n_ions: number of mobile ions in the cell.
    :param volume_A3: cell volume in Å³.
    :param temperature_K: temperature(s) in K.
    :param charge: charge number z of the mobile ion (1 for Li⁺).
    :param haven_ratio: H_R = D*/D_σ; 1 neglects ion–ion correlations (the Nernst–Einstein limit).
    """
    if int(n_ions) < 1:
        raise AnalysisError(f'n_ions must be at least 1, got {n_ions}.')
    volume = positive(volume_A3, 'volume_A3')
    positive(haven_ratio, 'haven_ratio')
    temperature = np.asarray(temperature_K, dtype=float)
    if np.any(~np.isfinite(temperature)) or np.any(temperature <= 0):
        raise AnalysisError(f'temperature_K must be positive, got {temperature_K}.')
    density_per_cm3 = int(n_ions) / (volume * A3_TO_CM3)
    sigma_s_cm = density_per_cm3 * (charge * ELEMENTARY_CHARGE_C) ** 2 * np.asarray(D_cm2_s, dtype=float)
    sigma_s_cm = sigma_s_cm / (haven_ratio * KB_J_PER_K * temperature)
    return sigma_s_cm * 1.0e3


def haven_ratio(D_tracer_cm2_s: float, D_sigma_cm2_s: float) -> float:
    """Haven ratio H_R = D* / D_σ (dimensionless) from the tracer and the collective (charge) D."""
    return float(D_tracer_cm2_s) / positive(D_sigma_cm2_s, 'D_sigma_cm2_s')
