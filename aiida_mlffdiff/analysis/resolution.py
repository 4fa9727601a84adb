"""Whether a number is a result: the reasons a D, an Ea or an extrapolated D/σ is *unresolved*.

An unresolved number is never shown as a result. Every function here returns ``None`` for a resolved value or a
short reason (one line, units included) that reports, tables and plots print in its place. They read plain dicts
(the ``compute_diffusion`` / ``fit_arrhenius`` outputs, or rows made of them), so that stored results of any age
can be judged the same way. Units: D in cm²/s, Ea in eV, σ in mS/cm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: An extrapolated D or σ whose interval spans more than this many decades (high/low > 10**x) is unresolved.
MAX_INTERVAL_DECADES = 1.0

__all__ = (
    'MAX_INTERVAL_DECADES',
    'arrhenius_unresolved',
    'd_unresolved',
    'ea_unresolved',
    'extrapolation_unresolved',
)


def _finite(value) -> bool:
    try:
        return value is not None and not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def d_unresolved(entry: Mapping) -> str | None:
    """Why a D(T) (cm²/s) is not a result, or None.

    Unresolved: no finite D, D ≤ 0 (no diffusion in the simulated time), an MSD that is not diffusive in the fit
    window (``diffusive`` false, when the entry records it), no finite standard error, or an error bar reaching zero
    (SE ≥ D).
    """
    d_value, error = entry.get('D_cm2_s'), entry.get('D_err_cm2_s')
    if not _finite(d_value):
        return 'no finite D'
    if d_value <= 0:
        return f'D = {d_value:.2g} cm²/s ≤ 0: no diffusion resolved in the simulated time'
    if entry.get('diffusive') is not None and not entry['diffusive']:
        slope = entry.get('loglog_slope')
        detail = f' (log-log slope {slope:.2f})' if _finite(slope) else ''
        return f'the MSD is not diffusive in the fit window{detail}'
    if not _finite(error):
        return 'D has no error bar'
    if error >= d_value:
        return f'its error bar reaches zero (SE {error:.2g} ≥ D {d_value:.2g} cm²/s)'
    return None


def ea_unresolved(fit: Mapping, point_reasons: Sequence[str | None] = ()) -> str | None:
    """Why the activation energy (eV) of an Arrhenius fit is not a result, or None.

    Unresolved: Ea ≤ 0 (D does not rise with T), no finite error on Ea (two temperatures without errors), an error
    as large as Ea itself, or a fit through a D that is itself unresolved (``point_reasons``, one per point).
    """
    ea, error = fit.get('Ea_eV'), fit.get('Ea_err_eV')
    if not _finite(ea):
        return 'no finite Ea'
    if ea <= 0:
        return f'Ea = {ea:.2f} eV ≤ 0: D does not rise with T'
    if not _finite(error):
        return 'Ea has no error bar (two temperatures without errors on D)'
    if error >= ea:
        return f'its error is as large as Ea ({ea:.2f} ± {error:.2f} eV)'
    temperatures = fit.get('temperatures_K') or [None] * len(point_reasons)
    for temperature, reason in zip(temperatures, point_reasons, strict=False):
        if reason:
            where = f'{temperature:g} K' if _finite(temperature) else 'one temperature'
            return f'the fit uses an unresolved D at {where} ({reason})'
    return None


def extrapolation_unresolved(
    value, interval: Sequence[float] | None, ea_reason: str | None, what: str = 'σ'
) -> str | None:
    """Why an Arrhenius-extrapolated D (cm²/s) or σ (mS/cm) is not a result, or None.

    Unresolved: it rests on an unresolved Ea, it is not finite and positive, or its interval spans more than
    :data:`MAX_INTERVAL_DECADES` decades.
    """
    if ea_reason:
        return f'{what} rests on an unresolved Ea ({ea_reason})'
    if not _finite(value) or value <= 0:
        return f'no finite positive {what}'
    if not interval or len(interval) != 2 or not all(_finite(bound) and bound > 0 for bound in interval):
        return f'{what} has no interval'
    decades = math.log10(interval[1] / interval[0])
    if decades > MAX_INTERVAL_DECADES:
        return f'the interval of {what} spans {decades:.1f} decades (more than {MAX_INTERVAL_DECADES:g})'
    return None


def arrhenius_unresolved(fit: Mapping, points: Sequence[Mapping] = ()) -> dict[str, str | None]:
    """The verdicts on an Arrhenius result: ``{'Ea': ..., 'D_at_T': ..., 'sigma_at_T': ...}`` (None = resolved).

    :param fit: a ``fit_arrhenius`` output (``Ea_eV``, ``Ea_err_eV``, ``D_at_T_cm2_s``, ``D_interval_cm2_s`` and,
        when the cell was known, ``sigma_at_T_mS_cm``, ``sigma_interval_mS_cm``).
    :param points: the D(T) results the fit used, in its order (``temperatures_K``); their verdicts enter Ea's.
        When empty, the fit's own ``D_unresolved`` list is used if it has one.
    """
    point_reasons = [d_unresolved(point) for point in points] if points else list(fit.get('D_unresolved') or [])
    ea = ea_unresolved(fit, point_reasons)
    verdicts = {
        'Ea': ea,
        'D_at_T': extrapolation_unresolved(fit.get('D_at_T_cm2_s'), fit.get('D_interval_cm2_s'), ea, 'D'),
        'sigma_at_T': None,
    }
    if fit.get('sigma_at_T_mS_cm') is not None:
        verdicts['sigma_at_T'] = extrapolation_unresolved(
            fit['sigma_at_T_mS_cm'], fit.get('sigma_interval_mS_cm'), ea, 'σ'
        )
    return verdicts
