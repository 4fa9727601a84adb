"""``summarize_diffusion``: one table of a DiffusionWorkChain's per-temperature results, made in the provenance."""

from __future__ import annotations

import math

from aiida.engine import calcfunction
from aiida.orm import Dict, Float

from ..analysis import d_unresolved
from .exit_codes import exit_code


def diffusion_summary(target_relative_error: float, rounds: dict, diffusion: dict[str, dict]) -> dict:
    """Per temperature: D and SE (cm²/s), relative error, replicas, batches, simulated ps, convergence, whether the
    MSD is diffusive, ``unresolved`` (why D is not a result, or None), the MD's atom-steps per process-second
    (``md_atom_steps_per_s``, the model's cost; ``rounds`` gives it) and warnings.

    :param target_relative_error: the SE(D)/D target of the work chain.
    :param rounds: temperature label → ``{'n_batches': int, 'warnings': [str]}`` (what the chain did).
    :param diffusion: temperature label → the ``compute_diffusion`` result of that temperature.
    """
    temperatures, warnings = {}, []
    for label, result in diffusion.items():
        chain = rounds.get(label, {})
        relative = result.get('relative_error')
        converged = relative is not None and math.isfinite(relative) and relative <= target_relative_error
        temperatures[label] = {
            'temperature_K': result['temperature_K'],
            'D_cm2_s': result['D_cm2_s'],
            'D_err_cm2_s': result['D_err_cm2_s'],
            'relative_error': relative,
            'n_replicas': result['n_replicas'],
            'n_batches': chain.get('n_batches', 0),
            'simulated_time_ps': result['simulated_time_ps'],
            'converged': converged,
            'diffusive': result.get('diffusive'),
            'loglog_slope': result.get('loglog_slope'),
            'unresolved': d_unresolved(result),
            'md_atom_steps_per_s': chain.get('md_atom_steps_per_s'),
            'warnings': list(chain.get('warnings', [])) + list(result.get('warnings', [])),
        }
        warnings.extend(chain.get('warnings', []))
    if len(diffusion) < 2:
        warnings.append('only one temperature: no Arrhenius fit')
    return {
        'target_relative_error': target_relative_error,
        'temperatures': temperatures,
        'converged': all(entry['converged'] for entry in temperatures.values()),
        'warnings': warnings,
    }


@calcfunction
def summarize_diffusion(target_relative_error: Float, rounds: Dict, **diffusion: Dict) -> Dict:
    """The summary Dict of a DiffusionWorkChain from its ``compute_diffusion`` results (one keyword per T label).

    :param target_relative_error: SE(D)/D target.
    :param rounds: temperature label → ``{'n_batches': int, 'warnings': [str]}``.
    """
    if not diffusion:
        return exit_code('ERROR_MISSING_INPUT', 'no diffusion result given.')
    results = {label: node.get_dict() for label, node in diffusion.items()}
    return Dict(diffusion_summary(target_relative_error.value, rounds.get_dict(), results))
