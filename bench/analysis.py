"""Benchmark of the analysis core against pymatgen-analysis-diffusion and kinisi.

Synthetic ensemble: ``--replicas`` independent trajectories of ``--frames`` frames, each with ``--ions``
Brownian Li (D = 1e-5 cm²/s) and ``--framework`` vibrating framework atoms, the whole content drifting.
Replicas are generated one at a time from a seeded RNG (never all in memory) as unwrapped Cartesian
positions, which is what pymatgen's DiffusionAnalyzer takes too.

Timed, our part only (generation excluded): per replica ``framework_drift`` (equal weights,
masses=None, pymatgen's convention) + the tracer MSD with that drift (``ensemble_tracer_msd``: ``--workers`` threads
over replicas, default all cores; also timed with one thread, printed next to it), then one ``estimate_diffusion``
(estimator 'ols', fixed window) over all replicas, after one untimed warm-up call (pymatgen gets one too). Replicas
are generated (untimed) in batches of 2 x workers. Peak memory: ``tracemalloc`` in a second, separate pass over the
same replicas (numpy allocations, relative to before the loop, including the batch being processed; the timing
pass runs without tracing). ``--profile``
prints a cProfile of our timed part.

Peers: pymatgen's DiffusionAnalyzer (smoothed='max') on every replica if that fits in ``--peer-budget``
seconds, else on a subset, extrapolated linearly (labelled); kinisi (default settings, per replica) on
``--kinisi-replicas`` replicas, extrapolated linearly (labelled).

D comparison: our OLS estimator on our pooled MSD at pymatgen's lags vs the same OLS
(``get_diffusivity_from_msd(..., smoothed=False)``) of pymatgen's pooled MSD, same window, same
replicas: identical up to round-off.

Single trajectory (``--single``, default on): replica 0 alone, the AIMD path. Ours: ``msd_from_positions`` (unwrap,
drift, MSD of 32 ion groups, collective path) + ``estimate_diffusion`` (default: ion-groups error, block-bootstrapped
D_σ) against ``aiida_mlffdiff.crosscheck.kinisi_estimate`` (kinisi's MSD with variances on ~100 lags + its MCMC) on
the same positions and window; wall times and their ratio printed.

Usage::

    python bench/analysis.py [--replicas 300 --frames 700 --ions 192 --framework 100 --peer-replicas N]
                             [--kinisi-replicas 3 --kinisi-stride 1] [--json PATH] [--profile]

Always exits 0 (a benchmark, not a test); missed targets are printed as MISS.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import sys
import time
import tracemalloc

import numpy as np
from scipy import fft as scipy_fft

from aiida_mlffdiff.analysis import ensemble_tracer_msd, estimate_diffusion, framework_drift, tracer_msd

D_TRUE_CM2_S = 1.0e-5
A2_PER_PS_PER_CM2_S = 1.0e4  # 1 cm²/s = 1e4 Å²/ps
FRAMEWORK_AMPLITUDE_A = 0.1
DRIFT_SCALE_A_PER_PS = 0.02

TARGET_OURS_S = 2.0
TARGET_OURS_MB = 1024.0
TARGET_SPEEDUP = 10.0
TARGET_D_REL = 1e-6


def make_replica(index: int, args) -> np.ndarray:
    """Unwrapped Cartesian positions ``(frames, ions + framework, 3)`` in Å of replica ``index`` (seeded)."""
    rng = np.random.default_rng([args.seed, index])
    n_atoms = args.ions + args.framework
    positions = np.empty((args.frames, n_atoms, 3))
    step = np.sqrt(2 * D_TRUE_CM2_S * A2_PER_PS_PER_CM2_S * args.frame_ps)
    walk = rng.normal(scale=step, size=(args.frames, args.ions, 3))
    walk[0] = rng.random((args.ions, 3)) * args.cell
    np.cumsum(walk, axis=0, out=positions[:, : args.ions])
    sites = rng.random((args.framework, 3)) * args.cell
    positions[:, args.ions :] = sites + rng.normal(scale=FRAMEWORK_AMPLITUDE_A, size=(args.frames, args.framework, 3))
    drift = rng.normal(scale=DRIFT_SCALE_A_PER_PS, size=3)
    positions += (np.arange(args.frames) * args.frame_ps)[:, None, None] * drift
    return positions


def masks(args) -> tuple[np.ndarray, np.ndarray]:
    mobile = np.zeros(args.ions + args.framework, dtype=bool)
    mobile[: args.ions] = True
    return mobile, ~mobile


def our_replica_msd(positions: np.ndarray, mobile: np.ndarray, framework: np.ndarray) -> np.ndarray:
    """Our per-replica pipeline on unwrapped positions: equal-weight drift removal, tracer MSD (all lags)."""
    return tracer_msd(positions, mobile, drift=framework_drift(positions, framework, masses=None))


def our_estimate(time_ps: np.ndarray, msd: np.ndarray, args):
    return estimate_diffusion(time_ps, msd, n_ions=args.ions, window=tuple(args.window), estimator='ols')


def fft_floor_seconds(args) -> float:
    """Seconds of the bare forward real FFTs any all-origins FFT MSD needs: 3 x ions columns per replica."""
    size = scipy_fft.next_fast_len(2 * args.frames, real=True)
    columns = np.zeros((3 * args.ions, size))
    columns[:, : args.frames] = np.random.default_rng(0).random((3 * args.ions, args.frames))
    spectrum = np.empty((3 * args.ions, size // 2 + 1), dtype=complex)
    np.fft.rfft(columns, axis=-1, out=spectrum)  # warm-up
    start = time.perf_counter()
    for _ in range(args.replicas):
        np.fft.rfft(columns, axis=-1, out=spectrum)
    return time.perf_counter() - start


def our_batch_msd(batch: list[np.ndarray], mobile: np.ndarray, framework: np.ndarray, workers: int) -> np.ndarray:
    """Our pipeline on a batch of replicas: drift per replica, then ``ensemble_tracer_msd`` in ``workers`` threads."""
    if workers == 1:
        return np.stack([our_replica_msd(positions, mobile, framework) for positions in batch])
    drifts = (framework_drift(positions, framework, masses=None) for positions in batch)
    return ensemble_tracer_msd(batch, mobile, drifts=drifts, workers=workers)


def batches(args, workers: int):
    """``(first index, replicas)`` in batches of ``2 × workers`` (what ensemble_tracer_msd holds at a time)."""
    size = 2 * workers
    for first in range(0, args.replicas, size):
        yield first, [make_replica(index, args) for index in range(first, min(first + size, args.replicas))]


def run_ours(args, workers: int, memory: bool = True) -> dict:
    """Timing pass (no tracing) and memory pass (tracemalloc) of our pipeline with ``workers`` threads."""
    mobile, framework = masks(args)
    time_ps = np.arange(args.frames) * args.frame_ps
    msd = np.empty((args.replicas, args.frames))
    our_batch_msd([make_replica(0, args)] * workers, mobile, framework, workers)  # warm-up, not timed
    profiler = cProfile.Profile() if args.profile else None
    msd_seconds = 0.0
    for first, batch in batches(args, workers):  # replicas generated untimed, a batch at a time
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        msd[first : first + len(batch)] = our_batch_msd(batch, mobile, framework, workers)
        msd_seconds += time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
    del batch
    if profiler is not None:
        profiler.enable()
    start = time.perf_counter()
    estimate = our_estimate(time_ps, msd, args)
    estimate_seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        print('cProfile of our part (the timings above/below include the profiler overhead):')
        pstats.Stats(profiler, stream=sys.stdout).sort_stats('tottime').print_stats(15)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    peak_mb = float('nan')
    if memory and not args.no_memory:
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        traced = np.empty((args.replicas, args.frames))
        peak = 0
        for first, batch in batches(args, workers):
            tracemalloc.reset_peak()  # the peak covers our call only (the batch being processed is live)
            traced[first : first + len(batch)] = our_batch_msd(batch, mobile, framework, workers)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
        del batch
        tracemalloc.reset_peak()
        our_estimate(time_ps, traced, args)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        peak_mb = (peak - baseline) / 2**20
        if not np.array_equal(traced, msd):
            print('warning: the traced pass gave a different MSD than the timed pass', file=sys.stderr)
    return {
        'time_ps': time_ps,
        'msd': msd,
        'estimate': estimate,
        'msd_seconds': msd_seconds,
        'estimate_seconds': estimate_seconds,
        'seconds': msd_seconds + estimate_seconds,
        'peak_mb': peak_mb,
        'maxrss_mb_after': maxrss_mb,
        'workers': workers,
    }


def pymatgen_inputs(positions: np.ndarray, args):
    from pymatgen.core import Lattice, Structure

    symbols = ['Li'] * args.ions + ['O'] * args.framework
    structure = Structure(Lattice.cubic(args.cell), symbols, positions[0], coords_are_cartesian=True)
    displacements = np.ascontiguousarray((positions - positions[0]).transpose(1, 0, 2))  # (sites, frames, 3)
    return structure, displacements


def pymatgen_analyzer(structure, displacements, args):
    from pymatgen.analysis.diffusion.analyzer import DiffusionAnalyzer

    return DiffusionAnalyzer(
        structure, displacements, 'Li', temperature=600, time_step=args.frame_ps * 1000, step_skip=1, smoothed='max'
    )


def run_pymatgen(args) -> dict:
    """pymatgen (smoothed='max') on all replicas, or on a subset within the budget and extrapolated."""
    import warnings

    warnings.filterwarnings('ignore', category=DeprecationWarning)
    probe = 5
    requested = args.peer_replicas
    # Warm-up call (lazy imports), then the memory of one analyzer (tracemalloc, replica 0; pymatgen allocates
    # through numpy); neither is timed.
    structure, displacements = pymatgen_inputs(make_replica(0, args), args)
    pymatgen_analyzer(structure, displacements, args)
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    pymatgen_analyzer(structure, displacements, args)
    peak_mb = (tracemalloc.get_traced_memory()[1] - baseline) / 2**20
    tracemalloc.stop()
    seconds, msds, native_d = 0.0, [], []
    dt_fs = None
    index = 0
    while True:
        if requested is not None and index >= requested:
            break
        if index >= args.replicas:
            break
        if requested is None and index == probe:
            per = seconds / index
            if per * args.replicas > args.peer_budget:  # run what fits in the budget, extrapolate the rest
                requested = max(probe, min(args.replicas, int(args.peer_budget / per)))
                if index >= requested:
                    break
        structure, displacements = pymatgen_inputs(make_replica(index, args), args)  # not timed
        start = time.perf_counter()
        analyzer = pymatgen_analyzer(structure, displacements, args)
        seconds += time.perf_counter() - start
        msds.append(analyzer.msd)
        native_d.append(analyzer.diffusivity)
        dt_fs = analyzer.dt
        index += 1
    n_run = index
    return {
        'n_run': n_run,
        'seconds_run': seconds,
        'seconds': seconds / n_run * args.replicas,
        'extrapolated': n_run < args.replicas,
        'msd': np.array(msds),
        'dt_fs': dt_fs,
        'native_D_mean_cm2_s': float(np.mean(native_d)),
        'peak_mb_per_analyzer': peak_mb,
    }


def run_kinisi(args) -> dict | None:
    """kinisi with its default settings (all lags, default MCMC), one replica at a time; extrapolated."""
    if args.kinisi_replicas <= 0:
        return None
    try:
        import scipp as sc
        from kinisi.analyze import DiffusionAnalyzer
        from kinisi.displacement import calculate_msd
        from kinisi.parser import Parser
    except ImportError as exception:
        print(f'kinisi not available: {exception}', file=sys.stderr)
        return None
    n_run = min(args.kinisi_replicas, args.replicas)
    seconds, values, errors = 0.0, [], []
    lattice = np.tile(np.eye(3) * args.cell, (args.frames, 1, 1))
    dt = None
    if args.kinisi_stride > 1:
        dt = sc.arange('time interval', args.kinisi_stride, args.frames, args.kinisi_stride) * sc.scalar(
            args.frame_ps, unit='ps'
        )
    for index in range(n_run):
        fractional = make_replica(index, args) / args.cell  # not timed
        start = time.perf_counter()
        parser = Parser(
            coords=sc.array(dims=['time', 'particle', 'dimension'], values=fractional),
            latt=sc.array(dims=['time', 'dimension1', 'dimension2'], values=lattice, unit='angstrom'),
            time_step=sc.scalar(args.frame_ps, unit='ps'),
            step_skip=sc.scalar(1),
            dt=dt,
            specie_indices=sc.arange('particle', args.ions),
        )
        analyzer = DiffusionAnalyzer(parser)
        analyzer._dg = calculate_msd(parser, progress=False)
        analyzer.diffusion(
            start_dt=sc.scalar(args.window[0], unit='ps'), progress=False, random_state=np.random.RandomState(index)
        )
        seconds += time.perf_counter() - start
        values.append(float(sc.mean(analyzer.D).value))
        errors.append(float(sc.std(analyzer.D, ddof=1).value))
    return {
        'n_run': n_run,
        'seconds_run': seconds,
        'seconds_per_replica': seconds / n_run,
        'seconds': seconds / n_run * args.replicas,
        'extrapolated': n_run < args.replicas,
        'D_mean_cm2_s': float(np.mean(values)),
        'D_err_mean_cm2_s': float(np.mean(errors)),
        'fit': f'start {args.window[0]} ps to the last lag, lag stride {args.kinisi_stride}, default MCMC',
        'label': 'kinisi (default settings)' if args.kinisi_stride == 1 else f'kinisi (stride {args.kinisi_stride})',
    }


def compare_d(ours: dict, peer: dict, args) -> dict:
    """Same replicas, same lags, same window, same OLS: our estimator vs pymatgen's lstsq."""
    from pymatgen.analysis.diffusion.analyzer import get_diffusivity_from_msd

    dt_fs = peer['dt_fs']
    lags = np.rint(dt_fs / (args.frame_ps * 1000)).astype(int)
    subset = ours['msd'][: peer['n_run']][:, lags]
    ours_d = our_estimate(dt_fs * 1e-3, subset, args).D_cm2_s
    window = (dt_fs >= args.window[0] * 1000) & (dt_fs <= args.window[1] * 1000)
    pooled = peer['msd'].mean(axis=0)
    peer_d = get_diffusivity_from_msd(pooled[window], dt_fs[window], False)[0]
    msd_rel = float(np.max(np.abs(subset.mean(axis=0) / pooled - 1)))
    return {
        'D_ours_cm2_s': float(ours_d),
        'D_pymatgen_cm2_s': float(peer_d),
        'D_rel_diff': float(abs(ours_d / peer_d - 1)),
        'msd_max_rel_diff': msd_rel,
        'n_replicas': peer['n_run'],
        'n_lags': int(window.sum()),
    }


def verdict(ok: bool | None) -> str:
    return 'SKIP' if ok is None else 'PASS' if ok else 'MISS'


def report(args, ours, peer, kin, comparison) -> dict:
    estimate = ours['estimate']
    speedup = peer['seconds'] / ours['seconds']
    lines = []
    size_gb = args.replicas * args.frames * (args.ions + args.framework) * 3 * 8 / 1e9
    lines.append(
        f'Ensemble: {args.replicas} replicas x {args.frames} frames x ({args.ions} Li + {args.framework} framework),'
        f' {args.frame_ps} ps/frame ({size_gb:.2f} GB if held at once; made 2 x workers at a time).'
    )
    lines.append(f'Window {args.window[0]}-{args.window[1]} ps, estimator ols; true D = {D_TRUE_CM2_S:.3e} cm²/s.')
    lines.append('')
    lines.append(f'{"code":<34}{"wall (s)":>12}{"peak (MB)":>12}{"vs ours":>10}  note')
    lines.append(
        f'{"ours (drift+MSD+estimate)":<34}{ours["seconds"]:>12.3f}{ours["peak_mb"]:>12.1f}{1.0:>10.1f}  '
        f'{ours["workers"]} thread(s) over replicas: MSD {ours["msd_seconds"]:.3f} s + estimate '
        f'{ours["estimate_seconds"]:.3f} s; peak: tracemalloc pass'
    )
    single = ours['single_thread']
    if single is not ours:
        lines.append(
            f'{"ours, 1 thread":<34}{single["seconds"]:>12.3f}{"":>12}{single["seconds"] / ours["seconds"]:>10.1f}  '
            f'pymatgen / ours-1-thread = {peer["seconds"] / single["seconds"]:.1f} (pymatgen runs on one thread)'
        )
    label = (
        f'EXTRAPOLATED from {peer["n_run"]} replicas ({peer["seconds_run"]:.1f} s)'
        if peer['extrapolated']
        else f'measured, all {peer["n_run"]} replicas'
    )
    lines.append(
        f'{"pymatgen DiffusionAnalyzer max":<34}{peer["seconds"]:>12.2f}{peer["peak_mb_per_analyzer"]:>12.1f}'
        f'{speedup:>10.1f}  {label}; peak = one analyzer'
    )
    floor = ours['fft_floor_seconds']
    lines.append(
        f'{"numpy rFFT alone (floor)":<34}{floor:>12.3f}{"":>12}{floor / ours["seconds"]:>10.2f}'
        '  the forward FFTs of 3 x ions zero-padded columns per replica, nothing else'
    )
    if kin is not None:
        lines.append(
            f'{kin["label"]:<34}{kin["seconds"]:>12.1f}{"n/a":>12}{kin["seconds"] / ours["seconds"]:>10.0f}'
            f'  EXTRAPOLATED from {kin["n_run"]} replicas ({kin["seconds_per_replica"]:.2f} s/replica);'
            ' peak n/a (scipp allocates outside tracemalloc)'
        )
    lines.append('')
    lines.append(
        f'D ours (all lags, {args.replicas} replicas): {estimate.D_cm2_s:.5e} ± {estimate.D_err_cm2_s:.2e} cm²/s'
    )
    lines.append(
        f'D same OLS on pymatgen lags ({comparison["n_replicas"]} replicas, {comparison["n_lags"]} points): ours '
        f'{comparison["D_ours_cm2_s"]:.12e}, pymatgen {comparison["D_pymatgen_cm2_s"]:.12e}, '
        f'rel. diff {comparison["D_rel_diff"]:.1e} (pooled MSD max rel. diff {comparison["msd_max_rel_diff"]:.1e})'
    )
    lines.append(f'pymatgen native D (smoothed=max, weighted, all its lags), mean: {peer["native_D_mean_cm2_s"]:.5e}')
    if kin is not None:
        lines.append(
            f'kinisi D ({kin["fit"]}), mean of {kin["n_run"]}: {kin["D_mean_cm2_s"]:.5e} '
            f'(posterior std {kin["D_err_mean_cm2_s"]:.2e} per replica)'
        )
    lines.append(f'maxrss after our timing pass (whole process, info): {ours["maxrss_mb_after"]:.0f} MB')
    lines.append('')
    targets = [
        (f'ours wall time <= {TARGET_OURS_S} s', ours['seconds'] <= TARGET_OURS_S, f'{ours["seconds"]:.3f} s'),
        (
            f'ours peak memory <= {TARGET_OURS_MB:.0f} MB',
            None if args.no_memory else ours['peak_mb'] <= TARGET_OURS_MB,
            'not measured (--no-memory)' if args.no_memory else f'{ours["peak_mb"]:.1f} MB',
        ),
        (
            f'>= {TARGET_SPEEDUP:.0f}x faster than pymatgen',
            speedup >= TARGET_SPEEDUP,
            f'{speedup:.1f}x' + (' (pymatgen extrapolated)' if peer['extrapolated'] else ''),
        ),
        (
            f'D identical to pymatgen <= {TARGET_D_REL:.0e}',
            comparison['D_rel_diff'] <= TARGET_D_REL,
            f'{comparison["D_rel_diff"]:.1e}',
        ),
    ]
    lines.append('Targets:')
    for name, ok, value in targets:
        lines.append(f'  {verdict(ok)}  {name:<36} {value}')
    print('\n'.join(lines))
    misses = [name for name, ok, _ in targets if ok is False]
    if misses:
        print(f'*** MISS: {"; ".join(misses)} ***')
    return {
        'config': {key: value for key, value in vars(args).items() if key != 'json'},
        'ours': {
            'seconds': ours['seconds'],
            'workers': ours['workers'],
            'seconds_one_thread': ours['single_thread']['seconds'],
            'msd_seconds': ours['msd_seconds'],
            'estimate_seconds': ours['estimate_seconds'],
            'peak_mb_tracemalloc': None if args.no_memory else ours['peak_mb'],
            'maxrss_mb_after_timing_pass': ours['maxrss_mb_after'],
            'D_cm2_s': estimate.D_cm2_s,
            'D_err_cm2_s': estimate.D_err_cm2_s,
        },
        'pymatgen': {key: value for key, value in peer.items() if key not in ('msd', 'dt_fs')}
        | {'speedup_vs_ours': speedup},
        'kinisi': None if kin is None else kin | {'ratio_vs_ours': kin['seconds'] / ours['seconds']},
        'D_comparison': comparison,
        'targets': {name: {'pass': ok, 'value': value} for name, ok, value in targets},
    }


def run_single(args) -> dict | None:
    """One trajectory (replica 0): our whole single-trajectory path against kinisi's on the same data and window."""
    from aiida_mlffdiff.analysis import msd_from_positions
    from aiida_mlffdiff.crosscheck import kinisi_estimate

    positions = make_replica(0, args)
    cell = np.eye(3) * args.cell
    symbols = ['Li'] * args.ions + ['O'] * args.framework
    mobile, framework = masks(args)
    started = time.perf_counter()
    result = msd_from_positions(positions, cell, symbols, 'Li', args.frame_ps, masses=None)
    estimate = estimate_diffusion(
        result.time_ps,
        result.msd_A2,
        n_ions=result.n_ions,
        window=tuple(args.window),
        ion_group_msd_A2=result.ion_group_msd_A2,
        ion_group_sizes=result.ion_group_sizes,
        collective_msd_A2=result.collective_msd_A2,
        collective_displacement_A=result.collective_displacement_A,
    )
    ours_seconds = time.perf_counter() - started
    try:
        drift = framework_drift(positions, framework, None)
        kin = kinisi_estimate(positions[:, mobile] - drift[:, None, :], cell, args.frame_ps, tuple(args.window))
    except ImportError as exception:
        print(f'kinisi not available: {exception}', file=sys.stderr)
        return None
    line = (
        f'Single trajectory ({args.frames} frames x {args.ions} Li, window {args.window[0]}-{args.window[1]} ps): '
        f'ours {estimate.estimator} {estimate.D_cm2_s:.4e} ± {estimate.D_err_cm2_s:.2e} cm²/s in {ours_seconds:.3f} s '
        f'(MSD of 32 ion groups + collective path + estimate with D_σ bootstrap); kinisi {kin["D_cm2_s"]:.4e} ± '
        f'{kin["D_err_cm2_s"]:.2e} in {kin["wall_s"]:.2f} s: kinisi / ours = {kin["wall_s"] / ours_seconds:.0f}x'
    )
    print(line)
    return {
        'ours_seconds': ours_seconds,
        'kinisi_seconds': kin['wall_s'],
        'ratio': kin['wall_s'] / ours_seconds,
        'D_cm2_s': estimate.D_cm2_s,
        'D_err_cm2_s': estimate.D_err_cm2_s,
        'kinisi_D_cm2_s': kin['D_cm2_s'],
        'kinisi_D_err_cm2_s': kin['D_err_cm2_s'],
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--replicas', type=int, default=300)
    parser.add_argument('--frames', type=int, default=700)
    parser.add_argument('--ions', type=int, default=192, help='mobile Li per replica')
    parser.add_argument('--framework', type=int, default=100, help='framework atoms per replica')
    parser.add_argument('--frame-ps', type=float, default=0.1, help='time between frames (ps)')
    parser.add_argument('--cell', type=float, default=15.0, help='cubic cell edge (Å)')
    parser.add_argument('--window', type=float, nargs=2, default=(5.0, 30.0), metavar=('START', 'END'))
    parser.add_argument(
        '--peer-replicas',
        type=int,
        default=None,
        help='replicas to run pymatgen on (default: all if that takes under --peer-budget s, else a subset, '
        'extrapolated)',
    )
    parser.add_argument('--peer-budget', type=float, default=60.0, help='seconds allowed for pymatgen by default')
    parser.add_argument('--kinisi-replicas', type=int, default=3, help='replicas to run kinisi on (0: skip)')
    parser.add_argument('--kinisi-stride', type=int, default=1, help='kinisi lag grid stride (1: its default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--workers', type=int, default=os.cpu_count() or 1, help='threads over replicas (default: all cores)'
    )
    parser.add_argument('--no-memory', action='store_true', help='skip the tracemalloc pass')
    parser.add_argument('--no-single', dest='single', action='store_false', help='skip the single-trajectory timing')
    parser.add_argument('--profile', action='store_true', help='print a cProfile of our timed part')
    parser.add_argument('--json', default=None, metavar='PATH', help='write the figures to this JSON file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    ours = run_ours(args, args.workers)
    ours['single_thread'] = run_ours(args, 1, memory=False) if args.workers > 1 else ours
    if not np.array_equal(ours['single_thread']['msd'], ours['msd']):
        print('warning: threads gave a different MSD than one thread', file=sys.stderr)
    ours['fft_floor_seconds'] = fft_floor_seconds(args)
    peer = run_pymatgen(args)
    kin = run_kinisi(args)
    comparison = compare_d(ours, peer, args)
    figures = report(args, ours, peer, kin, comparison)
    figures['single_trajectory'] = run_single(args) if args.single else None
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as handle:
            json.dump(figures, handle, indent=2, default=float)
    return 0


if __name__ == '__main__':
    sys.exit(main())
