"""``scaling_summary``: the MD cost of one model against the number of atoms, from the run_info of short MD jobs."""

from __future__ import annotations

import math

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, Str

from ..analysis.scaling import loglog_slope
from .exit_codes import exit_code

__all__ = ('STEPS_OF_THE_FIGURE', 'VARIED', 'scaling_summary', 'variation_summary')

#: What ``variation_summary`` can vary: the run_info key → how to read its value from a run_info.
VARIED = {
    'n_replicas': lambda info: len(info.get('replicas', [])),
    'threads_per_worker': lambda info: int(info.get('threads_per_worker', 1)),
}

#: The perspective's figure: the wall time of this many MD steps against the number of atoms.
STEPS_OF_THE_FIGURE = 1_000_000


@calcfunction
def scaling_summary(**run_infos: Dict) -> Dict:
    """Seconds per MD step of one replica (process time), atom-steps per second and peak memory (MB; None where the
    engine did not record it) per size, the log-log slope of the cost (1: O(N)) and the wall time of 10⁶
    steps (h), sorted by the number of atoms. The rate is that of the production (after the equilibration warmed the
    model up) where the engine records it.

    :param run_infos: ``size_<i>`` → the ``run_info`` Dict of a finished MD job (``n_atoms``, ``timing``,
        ``replicas``, ``peak_rss_MB``, ``hardware``).
    """
    entries = []
    for label, node in run_infos.items():
        info = node.get_dict()
        timing, replicas = info.get('timing', {}), info.get('replicas', [])
        rate = timing.get('production_atom_steps_per_replica_s') or timing.get('atom_steps_per_replica_s')
        if not rate or not info.get('n_atoms'):
            return exit_code('ERROR_MISSING_INPUT', f'{label} has no atom-steps per second (an unfinished run?).')
        entries.append(
            {
                'n_atoms': int(info['n_atoms']),
                'atom_steps_per_s': float(rate),
                'seconds_per_step': float(info['n_atoms']) / float(rate),
                'peak_rss_MB': max((info.get('peak_rss_MB') or {}).values(), default=None),  # None: not recorded
                'n_replicas': len(replicas),
                'hardware': info.get('hardware', {}),
                'engine': info.get('engine', 'ase'),
            }
        )
    entries.sort(key=lambda entry: entry['n_atoms'])
    n_atoms = np.array([entry['n_atoms'] for entry in entries])
    if len(set(n_atoms.tolist())) < 2:
        return exit_code('ERROR_INCOMPATIBLE_INPUTS', 'the scaling needs at least two different sizes.')
    seconds = np.array([entry['seconds_per_step'] for entry in entries])
    slope, slope_error = loglog_slope(n_atoms, seconds)
    return Dict(
        {
            'n_atoms': n_atoms.tolist(),
            'atom_steps_per_s': [entry['atom_steps_per_s'] for entry in entries],
            'seconds_per_step': seconds.tolist(),
            'peak_rss_MB': [entry['peak_rss_MB'] for entry in entries],
            'loglog_slope': slope,
            'loglog_slope_err': None if math.isnan(slope_error) else slope_error,
            'wall_hours_per_1e6_steps': (seconds * STEPS_OF_THE_FIGURE / 3600.0).tolist(),
            'hardware': entries[-1]['hardware'],
            'engine': entries[-1]['engine'],
            'replicas_per_job': entries[-1]['n_replicas'],
        }
    )


@calcfunction
def variation_summary(dimension: Str, **run_infos: Dict) -> Dict:
    """Throughput of one worker at one size against ``dimension`` (``n_replicas``: replicas per torch-sim batch;
    ``threads_per_worker``): atom-steps per process-second (all replicas of the worker together), the speed-up over
    the smallest value and, for threads, the parallel efficiency (speed-up / threads); peak memory (MB).

    :param run_infos: ``<kind>_<i>`` → the ``run_info`` Dict of a finished one-worker MD job at the probe size.
    """
    key = dimension.value
    if key not in VARIED:
        return exit_code('ERROR_INVALID_PARAMETERS', f'cannot vary {key!r} (known: {", ".join(VARIED)}).')
    entries = []
    for label, node in run_infos.items():
        info = node.get_dict()
        timing = info.get('timing', {})
        rate = timing.get('production_atom_steps_per_replica_s') or timing.get('atom_steps_per_replica_s')
        if not rate:
            return exit_code('ERROR_MISSING_INPUT', f'{label} has no atom-steps per second (an unfinished run?).')
        peak = max((info.get('peak_rss_MB') or {}).values(), default=None)
        entries.append((VARIED[key](info), float(rate), peak, int(info.get('n_atoms', 0))))
    entries.sort()
    values = [entry[0] for entry in entries]
    if len(set(values)) != len(values) or len({entry[3] for entry in entries}) != 1:
        return exit_code('ERROR_INCOMPATIBLE_INPUTS', f'needs one run per {key} value, all of one size.')
    rates = np.array([entry[1] for entry in entries])
    speedup = rates / rates[0]
    result = {
        'dimension': key,
        'n_atoms': entries[0][3],
        'values': values,
        'atom_steps_per_s': rates.tolist(),
        'speedup': speedup.tolist(),
        'peak_rss_MB': [entry[2] for entry in entries],
        'hardware': run_infos[next(iter(run_infos))].get_dict().get('hardware', {}),
    }
    if key == 'threads_per_worker':
        result['parallel_efficiency'] = (speedup * values[0] / np.array(values)).tolist()
    return Dict(result)
