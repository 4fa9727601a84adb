"""What each trick of the ASE driver's fast path (MD parameter ``fast_path``) earns, one at a time.

The fast path has three parts (``drivers/md_ensemble.py``): the driver's copy of ASE's Langevin step with
``FixCom`` stepped in a plain loop (``langevin``), the byte-wise state check (``state-check``) and, for MACE, the
graph kept between calls (``lean-mace``). The project keeps a copy of third-party code only where it earns ≥ 5 %.

One replica, one thread, NVT Langevin 300 K, 1 fs, on the bench models of ``bench/md_throughput.py`` (trained there
and cached in ``~/.cache/aiida-mlffdiff/bench-models``; run that first), on the 13-atom primitive and the 52-atom
conventional Li6PS5Cl cell. Separate processes per variant were tried first and failed to resolve anything: the
same upstream step took 1.7 ms in one process and 2.9 ms in the next. So the variants are *paired*: one process per
``--processes`` repeat runs, after 50 warm-up steps, ``--rounds`` rounds in each of which every variant steps the
same trajectory for ``--steps`` steps (the order rotated per round; the tricks are switched on and off on the same
calculator and integrator). The gain of a variant is upstream's block time over the variant's in the same round,
minus one; the table gives the median over all rounds of all processes and its interquartile range. A trick is
resolved when the whole range lies on one side of zero.

Usage::

    python bench/md_fast_path.py [--steps 40] [--rounds 15] [--processes 2] [--models mace,nequip,deepmd]

Always exits 0 when it ran (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from aiida_mlffdiff.drivers import driver_path
from aiida_mlffdiff.environments import ENGINES, build_environment
from aiida_mlffdiff.structures.argyrodite import li6ps5cl

CACHE = Path.home() / '.cache' / 'aiida-mlffdiff' / 'bench-models'
MODEL_FILES = {'mace': 'mlff_compiled.model', 'nequip': 'model.nequip.pt2', 'deepmd': 'model.pth'}
VARIANTS = ('upstream', 'state-check', 'langevin', 'lean-mace', 'all')

SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import ase.io
from evaluate_model import build_calculator, import_engine, set_threads
set_threads(1)
from md_ensemble import exact_state_check, lean_mace_calculate, lean_run, make_dynamics
architecture, model, structure = sys.argv[2:5]
steps, rounds, shift = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
variants = sys.argv[8].split(',')
import_engine(architecture)
config = {'timestep_fs': 1.0, 'temperature_K': 300.0, 'thermostat': 'langevin', 'coupling': 0.001}
calc = build_calculator(architecture, __import__('pathlib').Path(model), None, 'cpu')
plain = {'check_state': calc.check_state, 'calculate': calc.calculate}
tricks = {'check_state': exact_state_check(calc)}
if architecture == 'mace':
    tricks['calculate'] = lean_mace_calculate(calc)
atoms = ase.io.read(structure)
atoms.calc = calc
rng = np.random.default_rng(0)
atoms.set_velocities(rng.normal(0.0, 0.01, (len(atoms), 3)))
dynamics = make_dynamics(atoms, config, rng)

def runner(variant):
    on = {'state-check': {'check_state'}, 'lean-mace': {'calculate'}, 'all': set(tricks)}.get(variant, set())
    for name in plain:
        setattr(calc, name, tricks[name] if name in on and name in tricks else plain[name])
    calc.results = {}  # the next force request recomputes under the variant's own calculator
    return lean_run(dynamics, fast=variant in ('langevin', 'all'))

runner('upstream')(50)
times = {variant: [] for variant in variants}
for round_ in range(rounds):
    k = (round_ + shift) % len(variants)
    for variant in variants[k:] + variants[:k]:
        run = runner(variant)
        started = time.perf_counter()
        run(steps)
        times[variant].append((time.perf_counter() - started) / steps * 1e6)
print(json.dumps(times))
"""


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Lower quartile, median and upper quartile of ``values``."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, mid, high = statistics.quantiles(values, n=4)
    return low, mid, high


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=40, help='steps per variant per round')
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--processes', type=int, default=2)
    parser.add_argument('--models', default='mace,nequip,deepmd')
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix='md_fast_path-') as scratch:
        for architecture in args.models.split(','):
            model = next(CACHE.glob(f'{architecture}-*/{MODEL_FILES[architecture]}'), None)
            if model is None:
                print(f'{architecture}: no bench model in {CACHE} (run bench/md_throughput.py first)', flush=True)
                continue
            python = build_environment(ENGINES[architecture]).path / 'bin' / 'python'
            variants = [v for v in VARIANTS if architecture == 'mace' or v != 'lean-mace']
            for cell in ('primitive', 'conventional'):
                structure = Path(scratch) / f'{cell}.extxyz'
                atoms = li6ps5cl(cell)
                atoms.write(structure, format='extxyz')
                times: dict[str, list[float]] = {variant: [] for variant in variants}
                for shift in range(args.processes):
                    command = [str(python), '-c', SCRIPT, str(driver_path('md_ensemble').parent), architecture]
                    command += [str(model), str(structure), str(args.steps), str(args.rounds), str(shift)]
                    command += [','.join(variants)]
                    done = subprocess.run(command, capture_output=True, text=True, check=False)
                    if done.returncode:
                        lines = done.stderr.strip().splitlines() or ['']
                        print(f'{architecture} {len(atoms)} atoms: FAILED {lines[-1][:200]}', flush=True)
                        continue
                    for variant, values in json.loads(done.stdout.strip().splitlines()[-1]).items():
                        times[variant].extend(values)
                if not times['upstream']:
                    continue
                gains = {
                    variant: quartiles([u / v - 1 for u, v in zip(times['upstream'], values, strict=True)])
                    for variant, values in times.items()
                }
                median = {variant: statistics.median(values) for variant, values in times.items()}
                rows.append((architecture, len(atoms), median, gains))
                print(
                    f'{architecture} {len(atoms)} atoms: '
                    + ', '.join(f'{v} {median[v]:.0f} µs {gains[v][1]:+.1%}' for v in variants),
                    flush=True,
                )
    print('\nµs per MD step (median), gain over upstream in the same round: median [interquartile range]')
    print(f'{"model":7} {"atoms":>5} | ' + ' | '.join(f'{v:>26}' for v in VARIANTS))
    for architecture, n_atoms, median, gains in rows:
        cells = []
        for variant in VARIANTS:
            if variant not in median:
                cells.append(f'{"—":>26}')
                continue
            low, mid, high = gains[variant]
            cells.append(f'{median[variant]:7.0f} {mid:+6.1%} [{low:+.0%}, {high:+.0%}]')
        print(f'{architecture:7} {n_atoms:5d} | ' + ' | '.join(cells))
    return 0


if __name__ == '__main__':
    sys.exit(main())
