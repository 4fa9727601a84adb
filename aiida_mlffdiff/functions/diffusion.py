"""``compute_diffusion``: MsdData node(s) at one temperature → D ± SE with diagnostics, and the pooled MSD."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import ArrayData, Dict

from ..analysis import AnalysisError, estimate_diffusion, nernst_einstein_conductivity
from ..analysis.einstein import DEFAULT_MAX_FRACTION, DEFAULT_MIN_LOGLOG_SLOPE
from ..analysis.ensemble import ESTIMATORS
from ..data.msd import MsdData
from ..parameters import Option, fraction, one_of, positive, validate_parameters
from .exit_codes import exit_code
from .serialization import json_safe

DIFFUSION_PARAMETERS = {
    'fit_start_ps': Option((float, type(None)), None, 'start of the Einstein fit window (ps); automatic if absent'),
    'fit_end_ps': Option(
        (float, type(None)), None, 'end of the Einstein fit window (ps); automatic if absent', positive
    ),
    'estimator': Option(
        str,
        'auto',
        'auto, ols (replica spread), ion-groups (one trajectory: spread between groups of ions) or gls '
        '(random-walk covariance)',
        one_of(*ESTIMATORS),
    ),
    'confidence': Option(float, 0.95, 'level of the reported intervals', fraction),
    'n_bootstrap': Option(int, 2000, 'bootstrap resamples over whole replicas', positive),
    'seed': Option(int, 0, 'seed of the bootstrap'),
    'max_fraction': Option(float, DEFAULT_MAX_FRACTION, 'automatic window ends at this fraction of the longest lag'),
    'min_loglog_slope': Option(
        float, DEFAULT_MIN_LOGLOG_SLOPE, 'automatic window starts where the log-log slope stays above this'
    ),
}


class IncompatibleInputsError(AnalysisError):
    """MSD nodes that cannot be pooled."""


def pool_msd_nodes(nodes: Sequence[MsdData]) -> dict:
    """Stack the replicas of MSD nodes of the same system, species and temperature."""
    if not nodes:
        raise IncompatibleInputsError('no MSD node given.')
    first = nodes[0]
    for node in nodes[1:]:
        for key in ('species', 'temperature_K', 'n_ions', 'charge'):
            if getattr(node, key) != getattr(first, key):
                raise IncompatibleInputsError(
                    f'MSD nodes differ in {key}: {getattr(first, key)} and {getattr(node, key)}.'
                )
        if not np.isclose(node.volume_A3, first.volume_A3, rtol=1e-6):
            raise IncompatibleInputsError(
                f'MSD nodes differ in cell volume: {first.volume_A3} and {node.volume_A3} Å³.'
            )
        if node.time_ps.shape != first.time_ps.shape or not np.allclose(node.time_ps, first.time_ps):
            raise IncompatibleInputsError('MSD nodes have different time lags (frame interval or trajectory length).')
    collectives = [node.collective_msd_A2 for node in nodes]
    # What one trajectory's own error needs travels only when the pool is that one trajectory.
    single = nodes[0] if len(nodes) == 1 and first.n_replicas == 1 else None
    return {
        'ion_group_msd_A2': None if single is None else single.ion_group_msd_A2,
        'ion_group_sizes': None if single is None else single.ion_group_sizes,
        'collective_displacement_A': None if single is None else single.collective_displacement_A,
        'time_ps': first.time_ps,
        'msd_A2': np.concatenate([node.msd_A2 for node in nodes]),
        'collective_msd_A2': None if any(c is None for c in collectives) else np.concatenate(collectives),
        'species': first.species,
        'temperature_K': first.temperature_K,
        'n_ions': first.n_ions,
        'volume_A3': first.volume_A3,
        'charge': first.charge,
    }


def diffusion_results(nodes: Sequence[MsdData], parameters: dict | None) -> tuple[dict, dict]:
    """The calculation behind :func:`compute_diffusion` (raises ValueError/AnalysisError on bad input).

    :return: ``(result, pooled_arrays)``: the result dict (units in the keys) and the pooled MSD arrays.
    """
    params = validate_parameters(parameters, DIFFUSION_PARAMETERS, 'diffusion parameters')
    if (params['fit_start_ps'] is None) != (params['fit_end_ps'] is None):
        raise ValueError('invalid diffusion parameters: give both fit_start_ps and fit_end_ps, or neither.')
    pooled = pool_msd_nodes(nodes)
    window = None if params['fit_start_ps'] is None else (params['fit_start_ps'], params['fit_end_ps'])
    estimate = estimate_diffusion(
        pooled['time_ps'],
        pooled['msd_A2'],
        n_ions=pooled['n_ions'],
        window=window,
        estimator=params['estimator'],
        collective_msd_A2=pooled['collective_msd_A2'],
        ion_group_msd_A2=pooled['ion_group_msd_A2'],
        ion_group_sizes=pooled['ion_group_sizes'],
        collective_displacement_A=pooled['collective_displacement_A'],
        confidence=params['confidence'],
        n_bootstrap=params['n_bootstrap'],
        seed=params['seed'],
        max_fraction=params['max_fraction'],
        min_loglog_slope=params['min_loglog_slope'],
    )
    time = pooled['time_ps']
    result = estimate.as_dict()
    result.update(
        species=pooled['species'],
        temperature_K=pooled['temperature_K'],
        volume_A3=pooled['volume_A3'],
        charge=pooled['charge'],
        n_frames=int(time.size),
        frame_interval_ps=float(time[1] - time[0]),
        simulated_time_ps=float(pooled['msd_A2'].shape[0] * time[-1]),
    )
    if pooled['temperature_K'] is not None:
        low, high = result['D_interval_cm2_s']
        sigma = nernst_einstein_conductivity(
            np.array([estimate.D_cm2_s, max(low, 0.0), max(high, 0.0)]),
            n_ions=pooled['n_ions'],
            volume_A3=pooled['volume_A3'],
            temperature_K=pooled['temperature_K'],
            charge=pooled['charge'],
        )
        result.update(sigma_mS_cm=float(sigma[0]), sigma_interval_mS_cm=[float(sigma[1]), float(sigma[2])])
    msd = pooled['msd_A2']
    arrays = {'time_ps': time, 'msd_A2': msd.mean(axis=0)}
    if msd.shape[0] > 1:
        arrays['msd_sem_A2'] = msd.std(axis=0, ddof=1) / np.sqrt(msd.shape[0])
    if pooled['collective_msd_A2'] is not None:
        arrays['collective_msd_A2'] = pooled['collective_msd_A2'].mean(axis=0)
    return result, arrays


@calcfunction
def compute_diffusion(parameters: Dict | None = None, **msd: MsdData) -> dict:
    """D (cm²/s) ± standard error with fit diagnostics from MSD node(s) of one system at one temperature.

    :param parameters: optional, see ``DIFFUSION_PARAMETERS`` (fit window in ps, estimator, confidence, ...).
    :param msd: MsdData nodes whose replicas are pooled.
    :returns: ``diffusion`` (Dict: D_cm2_s, D_err_cm2_s, D_interval_cm2_s, fit window, log-log slope,
        window sensitivity, per-replica D, bootstrap, σ in mS/cm when T is known, Haven ratio, warnings)
        and ``pooled_msd`` (ArrayData: time_ps, msd_A2, msd_sem_A2, collective_msd_A2);
        or exit code 300/320/330/340.
    """
    if not msd:
        return exit_code('ERROR_MISSING_INPUT', 'no MSD node given.')
    nodes = [msd[label] for label in sorted(msd)]
    try:
        result, arrays = diffusion_results(nodes, parameters.get_dict() if parameters is not None else None)
    except IncompatibleInputsError as exception:
        return exit_code('ERROR_INCOMPATIBLE_INPUTS', str(exception))
    except AnalysisError as exception:
        return exit_code('ERROR_ANALYSIS_FAILED', str(exception))
    except ValueError as exception:
        return exit_code('ERROR_INVALID_PARAMETERS', str(exception))
    return {'diffusion': Dict(json_safe(result)), 'pooled_msd': ArrayData(arrays)}
