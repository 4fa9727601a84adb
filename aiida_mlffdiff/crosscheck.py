"""D of one trajectory from the peer libraries, on the same data and window as ours: pymatgen and kinisi.

Optional: pymatgen-analysis-diffusion and kinisi come with the ``tests`` extra (``pip install
aiida-mlffdiff[tests]``). Used by the test suite, ``bench/analysis.py`` and ``bench/single_trajectory.py``.

Both peers get the unwrapped, drift-corrected Cartesian positions (Å) of the mobile ions only, plus one fixed
stand-in framework atom, so that their own drift corrections are exact no-ops and all three codes see the same
displacements.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

#: kinisi's MSD is evaluated on about this many lags up to the end of the window.
KINISI_LAGS = 100


def _with_anchor(positions_A: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Mobile ions plus one motionless framework atom at the cell centre."""
    anchor = np.broadcast_to(0.5 * np.asarray(cell).sum(axis=0), (positions_A.shape[0], 1, 3))
    return np.concatenate([positions_A, anchor], axis=1), ['Li'] * positions_A.shape[1] + ['O']


def pymatgen_estimate(positions_A, cell, frame_interval_ps: float, window: tuple[float, float]) -> dict:
    """pymatgen's ``DiffusionAnalyzer`` (all-origins MSD, ``smoothed='max'`` lags) and its OLS on ``window`` (ps).

    :return: ``D_cm2_s`` and pymatgen's own ``D_err_cm2_s`` (from the residuals of the fit, which treats correlated
        MSD points as independent), ``wall_s``.
    """
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer, get_diffusivity_from_msd
    from pymatgen.core import Lattice, Structure

    started = time.perf_counter()
    positions, symbols = _with_anchor(np.asarray(positions_A, dtype=float), cell)
    structure = Structure(Lattice(cell), symbols, positions[0], coords_are_cartesian=True)
    displacements = np.ascontiguousarray((positions - positions[0]).transpose(1, 0, 2))
    analyzer = DiffusionAnalyzer(
        structure, displacements, 'Li', temperature=300, time_step=frame_interval_ps * 1000, step_skip=1, smoothed='max'
    )
    lags_ps = analyzer.dt * 1e-3
    inside = (lags_ps >= window[0] - 1e-9) & (lags_ps <= window[1] + 1e-9)
    d_value, d_error = get_diffusivity_from_msd(analyzer.msd[inside], analyzer.dt[inside], False)
    return {'D_cm2_s': float(d_value), 'D_err_cm2_s': float(d_error), 'wall_s': time.perf_counter() - started}


def kinisi_estimate(
    positions_A,
    cell,
    frame_interval_ps: float,
    window: tuple[float, float],
    *,
    seed: int = 0,
    n_samples: int = 500,
) -> dict:
    """kinisi 2's Bayesian GLS (MSD variance from the data, MCMC) from ``window[0]`` to ``window[1]`` (ps).

    kinisi fits from ``start_dt`` to the last lag of its grid, so the grid (about :data:`KINISI_LAGS` lags) ends at
    the window's end. :return: ``D_cm2_s`` (posterior mean), ``D_err_cm2_s`` (posterior standard deviation),
    ``window_ps`` (as fitted), ``wall_s``.
    """
    import scipp as sc
    from kinisi import analyze, displacement
    from kinisi.parser import Parser

    started = time.perf_counter()
    positions, _ = _with_anchor(np.asarray(positions_A, dtype=float), cell)
    n_frames = positions.shape[0]
    end = round(window[1] / frame_interval_ps)
    stride = max(1, end // KINISI_LAGS)
    grid = sc.arange('time interval', stride, end + 1, stride) * sc.scalar(frame_interval_ps, unit='ps')
    fractional = positions @ np.linalg.inv(cell)
    parser = Parser(
        coords=sc.array(dims=['time', 'particle', 'dimension'], values=fractional),
        latt=sc.array(
            dims=['time', 'dimension1', 'dimension2'], values=np.tile(cell, (n_frames, 1, 1)), unit='angstrom'
        ),
        time_step=sc.scalar(frame_interval_ps, unit='ps'),
        step_skip=sc.scalar(1),
        dt=grid,
        specie_indices=sc.array(dims=['particle'], values=np.arange(positions.shape[1] - 1)),
    )
    analyzer = analyze.DiffusionAnalyzer(parser)
    analyzer._dg = displacement.calculate_msd(parser, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        analyzer.diffusion(
            start_dt=sc.scalar(float(window[0]), unit='ps'),
            n_walkers=32,
            n_samples=n_samples,
            n_burn=500,
            n_thin=10,
            progress=False,
            random_state=np.random.RandomState(seed),
        )
    samples = sc.to_unit(analyzer.D, 'cm^2/s').values
    lags = analyzer.dt.values
    return {
        'D_cm2_s': float(np.mean(samples)),
        'D_err_cm2_s': float(np.std(samples, ddof=1)),
        'window_ps': (float(lags[lags >= window[0] - 1e-9][0]), float(lags[-1])),
        'wall_s': time.perf_counter() - started,
    }
