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
    rattle_amplitude_A: float = 0.0,
    rattle_time_ps: float = 0.1,
    framework_amplitude_A: float = 0.1,
    drift_A_per_ps: tuple[float, float, float] = (0.0, 0.0, 0.0),
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


#: The six nearest-neighbour jump vectors of a simple cubic lattice, in units of the site spacing.
_CUBIC_JUMPS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)


def hopping_diffusion_cm2_s(jump_A: float, residence_ps: float, back_jump_probability: float = 1 / 6) -> float:
    """The exact long-time D (cm²/s) of :func:`hopping_trajectory`'s ions.

    Jumps of length ``jump_A`` (Å) at rate ``1 / residence_ps`` give ``D₀ = a² / (6 τ)``. Each jump reverses the
    previous one with probability ``p`` and otherwise goes to one of the five other directions, so consecutive
    jumps have ``<cos θ> = c = −p + (1 − p) / 5`` and the direction correlation decays as ``cⁿ``: the tracer
    correlation factor is ``f = (1 + c) / (1 − c)`` and ``D = f D₀`` (``p = 1/6``: uncorrelated, f = 1).
    """
    c = -back_jump_probability + (1 - back_jump_probability) / 5
    return (1 + c) / (1 - c) * jump_A**2 / (6 * residence_ps) * A2_PER_PS_TO_CM2_PER_S


def hopping_trajectory(
    n_ions: int,
    *,
    n_frames: int,
    frame_interval_ps: float,
    seed: int,
    jump_A: float = 2.5,
    residence_ps: float = 2.0,
    back_jump_probability: float = 0.5,
    vibration_A: float = 0.4,
    vibration_time_ps: float = 0.05,
    sites_per_edge: int = 10,
    n_framework: int = 16,
    framework_amplitude_A: float = 0.1,
    wrap: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Ions hopping between the sites of a simple cubic lattice while vibrating in their cages.

    A non-Gaussian test case with a known D (:func:`hopping_diffusion_cm2_s`): every ion vibrates around its site
    (Ornstein–Uhlenbeck, ``vibration_A`` Å per Cartesian component, relaxation ``vibration_time_ps``) and jumps to
    a neighbouring site (``jump_A`` Å away) after exponentially distributed residence times (mean
    ``residence_ps``), reversing its previous jump with probability ``back_jump_probability``. The MSD has a cage
    plateau (≈ 6 A²), a sub-diffusive stretch where back jumps cancel forward ones, then the linear regime; the
    displacements are discrete jumps, not Gaussian. Ions move independently (sites may be shared). Framework
    atoms vibrate around fixed random sites. The cell is cubic with ``sites_per_edge · jump_A`` Å edges.

    :return: ``(positions (n_frames, n_ions + n_framework, 3) in Å, cell (3, 3) in Å, symbols)`` with the ions
        first (``'Li'``) and the framework after (``'O'``).
    """
    rng = np.random.default_rng(seed)
    edge = sites_per_edge * jump_A
    cell = np.eye(3) * edge
    sites = rng.integers(0, sites_per_edge, size=(n_ions, 3)) * jump_A
    # Jump counts per frame interval (Poisson), then each ion's sequence of jump directions (a Markov chain).
    counts = rng.poisson(frame_interval_ps / residence_ps, size=(n_frames - 1, n_ions))
    n_jumps = counts.sum(axis=0)
    longest = int(n_jumps.max()) if n_ions else 0
    directions = np.empty((max(longest, 1), n_ions), dtype=int)
    directions[0] = rng.integers(0, 6, size=n_ions)
    for k in range(1, longest):
        previous = directions[k - 1]
        reverse = previous ^ 1  # 0 <-> 1, 2 <-> 3, 4 <-> 5
        others = (reverse + 1 + rng.integers(0, 5, size=n_ions)) % 6  # uniform over the five non-reversing ones
        directions[k] = np.where(rng.random(n_ions) < back_jump_probability, reverse, others)
    steps = np.concatenate([np.zeros((1, n_ions, 3)), np.cumsum(_CUBIC_JUMPS[directions] * jump_A, axis=0)])
    done = np.concatenate([np.zeros((1, n_ions), dtype=int), np.cumsum(counts, axis=0)])  # jumps made by frame
    hops = np.take_along_axis(steps, done[:, :, None].repeat(3, axis=2), axis=0)
    decay = np.exp(-frame_interval_ps / vibration_time_ps)
    kicks = rng.normal(scale=vibration_A * np.sqrt(1 - decay**2), size=(n_frames, n_ions, 3))
    vibration = np.empty((n_frames, n_ions, 3))
    vibration[0] = rng.normal(scale=vibration_A, size=(n_ions, 3))
    for frame in range(1, n_frames):
        vibration[frame] = decay * vibration[frame - 1] + kicks[frame]
    ions = sites + hops + vibration
    framework_sites = rng.random((n_framework, 3)) @ cell
    framework = framework_sites + rng.normal(scale=framework_amplitude_A, size=(n_frames, n_framework, 3))
    positions = np.concatenate([ions, framework], axis=1)
    if wrap:
        positions = positions - np.floor(positions / edge) * edge
    return positions, cell, ['Li'] * n_ions + ['O'] * n_framework
