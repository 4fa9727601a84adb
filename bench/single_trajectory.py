"""One trajectory, four estimators: the table of docs/analysis.md (ours vs OLS vs pymatgen vs kinisi, D and error).

Rows:

- the hopping model (``aiida_mlffdiff.analysis.synthetic.hopping_trajectory``: 64 Li vibrating 0.4 Å in their cages,
  jumping 2.5 Å with 1 ps residence and a 50 % back-jump probability, 50 ps in 1000 frames; the true D is known),
  ``--seeds`` trajectories; windows 10–25 ps, 2.5–25 ps (starting inside the sub-diffusive stretch, as a window
  chosen by eye on AIMD often does) and our automatic one;
- an MLFF trajectory of our own engine (``--mlff FILE.npz``: ``positions_A`` (frames, ions, 3) unwrapped, drift
  removed, ``cell_A`` (3, 3), ``frame_interval_ps``, ``source``). The one in ``docs/data/mlff_trajectory.npz`` is the
  MACE trajectory of ``tests/calculations/test_md_ensemble.py::test_one_mlff_trajectory_against_pymatgen_and_kinisi``,
  written by that test when ``MLFFDIFF_KEEP_TRAJECTORY`` names a path; windows [T/5, T/2] and the automatic one.

Columns: D ± error (cm²/s) of our default single-trajectory estimator (ion-groups), the random-walk GLS (the old
default), plain OLS (no error of its own), pymatgen's OLS with its residual error, kinisi 2's Bayesian GLS; the ratio of
our error to kinisi's; wall times of ours and kinisi's on the same data.

Usage::

    python bench/single_trajectory.py [--seeds 3] [--mlff docs/data/mlff_trajectory.npz]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from aiida_mlffdiff.analysis import auto_fit_window, estimate_diffusion, fit_einstein, framework_drift, unwrap_positions
from aiida_mlffdiff.analysis.msd import grouped_tracer_msd
from aiida_mlffdiff.analysis.synthetic import hopping_diffusion_cm2_s, hopping_trajectory
from aiida_mlffdiff.crosscheck import kinisi_estimate, pymatgen_estimate

DEFAULT_MLFF = Path(__file__).resolve().parents[1] / 'docs' / 'data' / 'mlff_trajectory.npz'


def compare(label: str, mobile: np.ndarray, cell: np.ndarray, frame_ps: float, window, truth=None) -> dict:
    """Every estimator on the same mobile-ion positions (Å, unwrapped, drift removed) and window (ps)."""
    time_ps = np.arange(mobile.shape[0]) * frame_ps
    kinisi = kinisi_estimate(mobile, cell, frame_ps, window)
    window = kinisi['window_ps']
    started = time.perf_counter()
    groups, sizes = grouped_tracer_msd(mobile)
    pooled = sizes @ groups / sizes.sum()
    ours = estimate_diffusion(
        time_ps, pooled, n_ions=mobile.shape[1], window=window, ion_group_msd_A2=groups, ion_group_sizes=sizes
    )
    ours_s = time.perf_counter() - started
    gls = estimate_diffusion(time_ps, pooled, n_ions=mobile.shape[1], window=window, estimator='gls')
    return {
        'label': label,
        'window': window,
        'truth': truth,
        'ours': (ours.D_cm2_s, ours.D_err_cm2_s),
        'gls': (gls.D_cm2_s, gls.D_err_cm2_s),
        'ols': fit_einstein(time_ps, pooled, window).D_cm2_s,
        'pymatgen': (lambda p: (p['D_cm2_s'], p['D_err_cm2_s']))(pymatgen_estimate(mobile, cell, frame_ps, window)),
        'kinisi': (kinisi['D_cm2_s'], kinisi['D_err_cm2_s']),
        'ratio': ours.D_err_cm2_s / kinisi['D_err_cm2_s'],
        'ours_s': ours_s,
        'kinisi_s': kinisi['wall_s'],
    }


def hopping_rows(seeds: int) -> list[dict]:
    truth = hopping_diffusion_cm2_s(2.5, 1.0, 0.5)
    rows = []
    for seed in range(seeds):
        positions, cell, symbols = hopping_trajectory(
            64, n_frames=1000, frame_interval_ps=0.05, seed=100 + seed, residence_ps=1.0
        )
        unwrapped = unwrap_positions(positions, cell)
        mask = np.asarray(symbols) == 'Li'
        mobile = unwrapped[:, mask] - framework_drift(unwrapped, ~mask, None)[:, None, :]
        label = f'hopping model, seed {100 + seed}'
        for window in ((10.0, 25.0), (2.5, 25.0), automatic_window(mobile, 0.05)):
            rows.append(compare(label, mobile, cell, 0.05, window, truth))
    return rows


def automatic_window(mobile: np.ndarray, frame_ps: float) -> tuple[float, float]:
    """Our automatic fit window (ps) on the pooled MSD of the mobile ions."""
    groups, sizes = grouped_tracer_msd(mobile)
    return auto_fit_window(np.arange(mobile.shape[0]) * frame_ps, sizes @ groups / sizes.sum())[0]


def mlff_rows(path: Path) -> list[dict]:
    data = np.load(path)
    mobile, cell, frame_ps = data['positions_A'], data['cell_A'], float(data['frame_interval_ps'])
    end = (mobile.shape[0] - 1) * frame_ps
    label = str(data['source']) if 'source' in data else path.name
    automatic = automatic_window(mobile, frame_ps)
    return [
        compare(f'{label}, window [T/5, T/2]', mobile, cell, frame_ps, (0.2 * end, 0.5 * end)),
        compare(f'{label}, automatic window', mobile, cell, frame_ps, automatic),
    ]


def pm(pair) -> str:
    return f'{pair[0]:.3g} ± {pair[1]:.2g}'


def print_table(rows: list[dict]) -> None:
    print(
        '| trajectory | window (ps) | true D | ours (ion-groups) | random-walk GLS | OLS | pymatgen | kinisi 2.1 '
        '| ours / kinisi error | ours / kinisi time |'
    )
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for row in rows:
        truth = f'{row["truth"]:.3g}' if row['truth'] is not None else '–'
        print(
            f'| {row["label"]} | {row["window"][0]:.3g}–{row["window"][1]:.3g} | {truth} | {pm(row["ours"])} '
            f'| {pm(row["gls"])} | {row["ols"]:.3g} | {pm(row["pymatgen"])} | {pm(row["kinisi"])} '
            f'| {row["ratio"]:.2f} | {row["ours_s"]:.3f} s / {row["kinisi_s"]:.1f} s |'
        )
    print(
        "D and errors in cm²/s; pymatgen's error is that of its residuals (correlated MSD points taken as independent)."
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=3, help='hopping-model trajectories')
    parser.add_argument('--mlff', type=Path, default=DEFAULT_MLFF, help='MLFF trajectory (npz); skipped if absent')
    args = parser.parse_args(argv)
    rows = hopping_rows(args.seeds)
    if args.mlff.is_file():
        rows += mlff_rows(args.mlff)
    else:
        print(f'no MLFF trajectory at {args.mlff}: its rows are skipped')
    print_table(rows)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
