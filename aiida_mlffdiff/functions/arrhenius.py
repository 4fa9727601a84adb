"""``fit_arrhenius``: diffusion results at several temperatures → Ea, D0 and D, σ extrapolated to T."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict

from ..analysis import AnalysisError, arrhenius_unresolved, d_unresolved
from ..analysis import fit_arrhenius as fit_arrhenius_arrays
from ..parameters import Option, fraction, positive, validate_parameters
from .exit_codes import exit_code
from .serialization import json_safe

ARRHENIUS_PARAMETERS = {
    'temperature_K': Option(float, 300.0, 'temperature to extrapolate D and σ to (K)', positive),
    'confidence': Option(float, 0.95, 'level of the reported intervals', fraction),
    'use_errors': Option(bool, True, 'weight the fit by the standard errors of D'),
}


class MissingTemperatureError(AnalysisError):
    """A diffusion result without a temperature."""


def arrhenius_results(results: Sequence[dict], parameters: dict | None) -> dict:
    """The calculation behind :func:`fit_arrhenius` on plain result dicts (raises ValueError/AnalysisError).

    Each result needs ``temperature_K`` and ``D_cm2_s`` (and ``D_err_cm2_s`` for a weighted fit); when all
    share ``n_ions``, ``volume_A3`` and ``charge`` the conductivity is extrapolated too. ``D_unresolved`` (one
    reason or None per point) and ``unresolved`` (``Ea``, ``D_at_T``, ``sigma_at_T``: a reason or None) say which
    numbers are not results (:mod:`aiida_mlffdiff.analysis.resolution`).
    """
    params = validate_parameters(parameters, ARRHENIUS_PARAMETERS, 'Arrhenius parameters')
    missing = [i for i, r in enumerate(results) if r.get('temperature_K') is None]
    if missing:
        raise MissingTemperatureError(
            f'diffusion result(s) {missing} have no temperature_K: an Arrhenius fit needs it.'
        )
    temperatures = np.array([r['temperature_K'] for r in results], dtype=float)
    d_values = np.array([r['D_cm2_s'] for r in results], dtype=float)
    errors = None
    if params['use_errors'] and all(r.get('D_err_cm2_s') for r in results):
        errors = np.array([r['D_err_cm2_s'] for r in results], dtype=float)
    lacking = [r['temperature_K'] for r in results if not r.get('D_err_cm2_s')]
    fit = fit_arrhenius_arrays(temperatures, d_values, errors, confidence=params['confidence'])
    if params['use_errors'] and lacking and len(lacking) < len(results):
        fit.warnings.append(
            'unweighted fit: D has no (or a zero) error at '
            + ', '.join(f'{t:g} K' for t in lacking)
            + '; the errors of the other temperatures were not used.'
        )
    target = params['temperature_K']
    d_at_t, d_interval = fit.predict(target)
    output = fit.as_dict()
    output.update(
        temperature_K=target,
        D_at_T_cm2_s=d_at_t,
        D_interval_cm2_s=list(d_interval),
        D_cm2_s=d_values.tolist(),
        D_err_cm2_s=None if errors is None else errors.tolist(),
    )
    system = {(r.get('n_ions'), r.get('volume_A3'), r.get('charge', 1.0)) for r in results}
    if len(system) == 1:
        n_ions, volume, charge = system.pop()
        if n_ions and volume:
            sigma, sigma_interval = fit.conductivity(target, n_ions=n_ions, volume_A3=volume, charge=charge)
            output.update(
                sigma_at_T_mS_cm=sigma, sigma_interval_mS_cm=list(sigma_interval), n_ions=n_ions, volume_A3=volume
            )
    output['D_unresolved'] = [d_unresolved(result) for result in results]
    output['unresolved'] = arrhenius_unresolved(output)
    return output


def arrhenius_line(fit: Mapping) -> str:
    """The report line of an Arrhenius result: Ea (eV), D (cm²/s) and σ (mS/cm) at the extrapolation temperature,
    each one either a value or ``unresolved (why)`` (``fit['unresolved']``)."""
    unresolved = fit.get('unresolved') or {}
    temperature = fit['temperature_K']
    parts = [
        f'Ea unresolved ({unresolved["Ea"]})'
        if unresolved.get('Ea')
        else f'Ea = {fit["Ea_eV"]:.3f} ± {fit["Ea_err_eV"]:.3f} eV',
        f'D({temperature:g} K) unresolved ({unresolved["D_at_T"]})'
        if unresolved.get('D_at_T')
        else f'D({temperature:g} K) = {fit["D_at_T_cm2_s"]:.3e} cm²/s',
    ]
    if fit.get('sigma_at_T_mS_cm') is not None and unresolved.get('sigma_at_T'):
        parts.append(f'σ({temperature:g} K) unresolved ({unresolved["sigma_at_T"]})')
    elif fit.get('sigma_at_T_mS_cm') is not None:
        low, high = fit['sigma_interval_mS_cm']
        parts.append(f'σ({temperature:g} K) = {fit["sigma_at_T_mS_cm"]:.3g} mS/cm [{low:.3g}, {high:.3g}]')
    return 'Arrhenius: ' + ', '.join(parts)


@calcfunction
def fit_arrhenius(parameters: Dict | None = None, **diffusion: Dict) -> Dict:
    """Arrhenius fit of the ``diffusion`` outputs of :func:`compute_diffusion` at several temperatures.

    :param parameters: optional, see ``ARRHENIUS_PARAMETERS`` (extrapolation temperature in K, confidence).
    :returns: Dict with Ea_eV ± Ea_err_eV, D0_cm2_s, D_at_T_cm2_s with interval, sigma_at_T_mS_cm with
        interval (mS/cm) when the cell is known, and ``unresolved``: why Ea, D(T) or σ(T) is not a result (None
        when it is); or exit code 300/330/340.
    """
    if len(diffusion) < 2:
        return exit_code(
            'ERROR_MISSING_INPUT', f'an Arrhenius fit needs 2 or more diffusion results, got {len(diffusion)}.'
        )
    results = [diffusion[label].get_dict() for label in sorted(diffusion)]
    try:
        output = arrhenius_results(results, parameters.get_dict() if parameters is not None else None)
    except MissingTemperatureError as exception:
        return exit_code('ERROR_MISSING_INPUT', str(exception))
    except AnalysisError as exception:
        return exit_code('ERROR_ANALYSIS_FAILED', str(exception))
    except ValueError as exception:
        return exit_code('ERROR_INVALID_PARAMETERS', str(exception))
    return Dict(json_safe(output))
