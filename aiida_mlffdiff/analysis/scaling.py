"""MD cost against system size, and the plan of a protocol from measured costs (numpy only).

A model's MD cost per step grows with the number of atoms N: for a local model, O(N) once N is large enough that
the fixed overhead of a step no longer dominates. The measured seconds per MD step of one replica at a few sizes
give the log-log slope (1: linear) and, interpolated in log-log, the cost at any size within the measured range;
beyond the largest size the cost is extrapolated with the slope of the two largest sizes, but never less than
linear (a local model cannot get cheaper per atom), below the smallest it is the smallest size's cost.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ('BYTES_PER_VALUE', 'loglog_slope', 'plan_md', 'seconds_per_step_at')

#: Bytes per stored coordinate (float64).
BYTES_PER_VALUE = 8


def loglog_slope(n_atoms: np.ndarray, seconds_per_step: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log(seconds per step) against log(N) over all sizes, and its standard error."""
    x, y = np.log(np.asarray(n_atoms, dtype=float)), np.log(np.asarray(seconds_per_step, dtype=float))
    if x.size < 2 or np.ptp(x) == 0:
        raise ValueError('the slope needs at least two different sizes.')
    coefficients, residuals, *_ = np.polyfit(x, y, 1, full=True)
    slope = float(coefficients[0])
    if x.size < 3:
        return slope, math.nan
    variance = float(residuals[0]) / (x.size - 2) if residuals.size else 0.0
    return slope, math.sqrt(variance / float(((x - x.mean()) ** 2).sum()))


def seconds_per_step_at(n_atoms: np.ndarray, seconds_per_step: np.ndarray, target_atoms: float) -> float:
    """Seconds per MD step of one replica at ``target_atoms`` from the measured sizes (see the module docstring)."""
    order = np.argsort(n_atoms)
    n, t = np.asarray(n_atoms, dtype=float)[order], np.asarray(seconds_per_step, dtype=float)[order]
    if target_atoms <= n[0]:
        return float(t[0])
    if target_atoms <= n[-1]:
        return float(np.exp(np.interp(np.log(target_atoms), np.log(n), np.log(t))))
    slope = max(1.0, math.log(t[-1] / t[-2]) / math.log(n[-1] / n[-2])) if n.size > 1 else 1.0
    return float(t[-1] * (target_atoms / n[-1]) ** slope)


def plan_md(
    seconds_per_step: float,
    *,
    n_atoms: int,
    replicas: int,
    production_ps: float,
    timestep_fs: float,
    equilibration_ps: float = 0.0,
    sampling_interval_fs: float | None = None,
    parallel_replicas: int = 1,
    cores_per_replica: int = 1,
    temperatures: int = 1,
) -> dict:
    """The cost of an MD protocol: steps, process-hours, wall time with ``parallel_replicas`` at once (h),
    core-hours, and the stored trajectories (bytes: positions of every atom, float64, at the sampling interval; an
    upper bound, the ensemble keeps only the mobile ions)."""
    steps = (equilibration_ps + production_ps) * 1000.0 / timestep_fs
    runs = replicas * temperatures
    process_s = runs * steps * seconds_per_step
    waves = math.ceil(runs / parallel_replicas)
    interval = sampling_interval_fs or 10 * timestep_fs
    frames = production_ps * 1000.0 / interval
    return {
        'seconds_per_step': seconds_per_step,
        'steps_per_replica': steps,
        'replica_runs': runs,
        'process_hours': process_s / 3600.0,
        'wall_hours': waves * steps * seconds_per_step / 3600.0,
        'core_hours': process_s * cores_per_replica / 3600.0,
        'storage_bytes': runs * frames * n_atoms * 3 * BYTES_PER_VALUE,
    }
