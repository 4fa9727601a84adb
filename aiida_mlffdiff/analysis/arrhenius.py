"""Arrhenius fit of D(T) = D0 exp(-Ea / kB T), weighted by the errors of D, and extrapolation with intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .conductivity import nernst_einstein_conductivity
from .errors import AnalysisError
from .units import KB_EV_PER_K
from .validation import as_finite_array


@dataclass
class ArrheniusFit:
    """ln D = ln D0 − Ea/(kB T): Ea (eV), D0 (cm²/s) and the covariance of (ln D0, −Ea)."""

    Ea_eV: float
    Ea_err_eV: float
    D0_cm2_s: float
    ln_D0_err: float
    covariance: list[list[float]]
    n_points: int
    weighted: bool
    reduced_chi2: float
    confidence: float
    temperatures_K: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _quantile(self) -> float:
        if self.weighted:
            return float(stats.norm.ppf(0.5 + self.confidence / 2))
        return float(stats.t.ppf(0.5 + self.confidence / 2, max(self.n_points - 2, 1)))

    def predict(self, temperature_K: float) -> tuple[float, tuple[float, float]]:
        """Extrapolated D (cm²/s) at ``temperature_K`` and its interval at the fit's confidence level."""
        temperature = float(temperature_K)
        if not np.isfinite(temperature) or temperature <= 0:
            raise AnalysisError(f'temperature must be positive, got {temperature_K} K.')
        x = np.array([1.0, 1.0 / (KB_EV_PER_K * temperature)])
        log_d = np.log(self.D0_cm2_s) - self.Ea_eV * x[1]
        log_err = float(np.sqrt(max(x @ np.asarray(self.covariance) @ x, 0.0)))
        half = self._quantile() * log_err
        return float(np.exp(log_d)), (float(np.exp(log_d - half)), float(np.exp(log_d + half)))

    def conductivity(
        self,
        temperature_K: float,
        *,
        n_ions: int,
        volume_A3: float,
        charge: float = 1.0,
    ) -> tuple[float, tuple[float, float]]:
        """Extrapolated Nernst–Einstein conductivity (mS/cm) at ``temperature_K`` with its interval."""
        d_value, (low, high) = self.predict(temperature_K)
        sigma = nernst_einstein_conductivity(
            np.array([d_value, low, high]),
            n_ions=n_ions,
            volume_A3=volume_A3,
            temperature_K=temperature_K,
            charge=charge,
        )
        return float(sigma[0]), (float(sigma[1]), float(sigma[2]))

    def as_dict(self) -> dict:
        """The fit as a plain JSON-serialisable dict."""
        return asdict(self)


def fit_arrhenius(temperature_K, D_cm2_s, D_err_cm2_s=None, *, confidence: float = 0.95) -> ArrheniusFit:
    """Fit ln D against 1/(kB T).

    With errors, a weighted fit (weights 1/σ²_lnD, σ_lnD = σ_D / D) whose covariance is scaled up by the
    reduced χ² when the points scatter more than their errors say (never scaled down). Without errors,
    an unweighted fit whose covariance comes from the residuals (needs 3 or more temperatures).

    :param temperature_K: temperatures (K), at least 2 distinct.
    :param D_cm2_s: diffusion coefficients (cm²/s), positive.
    :param D_err_cm2_s: optional standard errors of D (cm²/s), positive.
    """
    temperature = as_finite_array(temperature_K, 'temperature_K', ndim=1)
    d_values = as_finite_array(D_cm2_s, 'D_cm2_s', ndim=1)
    if temperature.shape != d_values.shape:
        raise AnalysisError(f'{temperature.size} temperatures but {d_values.size} D values.')
    if np.any(temperature <= 0):
        raise AnalysisError(f'temperatures must be positive (K), got {temperature.min()} K.')
    if np.unique(temperature).size < 2:
        raise AnalysisError('an Arrhenius fit needs D at 2 or more distinct temperatures.')
    if np.any(d_values <= 0):
        raise AnalysisError(
            f'D must be positive for an Arrhenius fit, got {d_values.min():.3g} cm²/s at '
            f'{temperature[d_values.argmin()]} K (no diffusion there: leave that temperature out).'
        )
    if not 0 < confidence < 1:
        raise AnalysisError(f'confidence must be between 0 and 1, got {confidence}.')
    x = 1.0 / (KB_EV_PER_K * temperature)
    y = np.log(d_values)
    design = np.column_stack([np.ones_like(x), x])
    n_points = x.size
    warnings: list[str] = []
    if D_err_cm2_s is not None:
        errors = as_finite_array(D_err_cm2_s, 'D_err_cm2_s', ndim=1)
        if errors.shape != d_values.shape or np.any(errors <= 0):
            raise AnalysisError('D_err_cm2_s must hold one positive error per D value.')
        weights = (d_values / errors) ** 2
        normal = design.T @ (weights[:, None] * design)
        coefficients = np.linalg.solve(normal, design.T @ (weights * y))
        covariance = np.linalg.inv(normal)
        residuals = y - design @ coefficients
        reduced_chi2 = float(weights @ residuals**2 / (n_points - 2)) if n_points > 2 else float('nan')
        if n_points > 2 and reduced_chi2 > 1:
            covariance *= reduced_chi2
            if reduced_chi2 > 4:
                warnings.append(
                    f'the points scatter {np.sqrt(reduced_chi2):.1f}x more than their errors allow: the errors '
                    'were scaled up; D(T) may not be Arrhenius over this range.'
                )
    else:
        coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
        residuals = y - design @ coefficients
        if n_points > 2:
            reduced_chi2 = float(residuals @ residuals / (n_points - 2))
            covariance = reduced_chi2 * np.linalg.inv(design.T @ design)
        else:
            reduced_chi2 = float('nan')
            covariance = np.full((2, 2), np.nan)
            warnings.append('two temperatures without errors on D: Ea has no error bar.')
    return ArrheniusFit(
        Ea_eV=float(-coefficients[1]),
        Ea_err_eV=float(np.sqrt(covariance[1, 1])),
        D0_cm2_s=float(np.exp(coefficients[0])),
        ln_D0_err=float(np.sqrt(covariance[0, 0])),
        covariance=covariance.tolist(),
        n_points=n_points,
        weighted=D_err_cm2_s is not None,
        reduced_chi2=reduced_chi2,
        confidence=confidence,
        temperatures_K=temperature.tolist(),
        warnings=warnings,
    )
