"""Synthetic trajectories with a known diffusion coefficient, for validation, benchmarks and the demo.

Mobile ions do Brownian motion (D per species, Å²/ps) on top of an optional Ornstein–Uhlenbeck rattle
in their cage (amplitude Å, relaxation time ps), which gives the MSD a realistic caged short-time
regime: MSD(t) = 6 D t + 6 A² (1 − exp(−t/τ)). Framework atoms vibrate around fixed sites; the whole
cell content can drift, as it does in thermostatted MD. Positions are returned wrapped into the cell.
"""

from __future__ import annotations

import numpy as np

from .units import A2_PER_PS_TO_CM2_PER_S


def brownian_trajectory(
    cell,
    symbols,
    diffusion_cm2_s: dict[str, float],
    *,
    n_frames: int,
    frame_interval_ps: float,
    seed: int,
    rattle_amplitude_A: float = 0.0,  # noqa: N803
    rattle_time_ps: float = 0.1,
    framework_amplitude_A: float = 0.1,  # noqa: N803
    drift_A_per_ps: tuple[float, float, float] = (0.0, 0.0, 0.0),  # noqa: N803
    wrap: bool = True,
) -> np.ndarray:
    """Return positions ``(n_frames, n_atoms, 3)`` in Å.

    :param cell: rows are lattice vectors (Å).
    :param symbols: chemical symbols; species in ``diffusion_cm2_s`` diffuse, the others vibrate.
    :param diffusion_cm2_s: the true D (cm²/s) of each mobile species.
    """
    rng = np.random.default_rng(seed)
    cell = np.asarray(cell, dtype=float)
    symbols = np.asarray(symbols)
    n_atoms = symbols.size
    sites = rng.random((n_atoms, 3)) @ cell
    positions = np.repeat(sites[None], n_frames, axis=0)
    for species, d_cm2_s in diffusion_cm2_s.items():
        mask = symbols == species
        d_a2_ps = d_cm2_s / A2_PER_PS_TO_CM2_PER_S
        steps = rng.normal(scale=np.sqrt(2 * d_a2_ps * frame_interval_ps), size=(n_frames - 1, mask.sum(), 3))
        walk = np.concatenate([np.zeros((1, mask.sum(), 3)), np.cumsum(steps, axis=0)])
        if rattle_amplitude_A > 0:
            decay = np.exp(-frame_interval_ps / rattle_time_ps)
            kicks = rng.normal(scale=rattle_amplitude_A * np.sqrt(1 - decay**2), size=walk.shape)
            rattle = np.empty_like(walk)
            rattle[0] = rng.normal(scale=rattle_amplitude_A, size=walk.shape[1:])
            for frame in range(1, n_frames):
                rattle[frame] = decay * rattle[frame - 1] + kicks[frame]
            walk += rattle
        positions[:, mask] += walk
    framework = ~np.isin(symbols, list(diffusion_cm2_s))
    positions[:, framework] += rng.normal(scale=framework_amplitude_A, size=(n_frames, framework.sum(), 3))
    positions += np.arange(n_frames)[:, None, None] * frame_interval_ps * np.asarray(drift_A_per_ps)
    if wrap:
        fractional = positions @ np.linalg.inv(cell)
        positions = (fractional - np.floor(fractional)) @ cell
    return positions
