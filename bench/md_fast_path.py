"""What each trick of the ASE driver's fast path (MD parameter ``fast_path``) earns, one at a time.

The fast path has three parts (``drivers/md_ensemble.py``): the driver's copy of ASE's Langevin step with
``FixCom`` stepped in a plain loop (``langevin``), the byte-wise state check (``state-check``) and, for MACE, the
graph kept between calls (``lean-mace``). The project keeps a copy of third-party code only where it earns ≥ 5 %.
This script times one replica in one process (one thread), NVT Langevin 300 K, 1 fs, on the bench models of
``bench/md_throughput.py`` (trained there and cached in ``~/.cache/aiida-mlffdiff/bench-models``; run that first),
for the upstream path, each trick alone and all of them, on the 13-atom primitive and the 52-atom conventional
Li6PS5Cl cell. Each variant runs in its own process (20 warm-up steps, then ``--steps`` timed), ``--repeats``
times with the order of the variants rotated, so that no variant always runs first or last; the table gives the
median µs per step and the gain over upstream.

Usage::

    python bench/md_fast_path.py [--steps 150] [--repeats 3] [--models mace,nequip]

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
MODEL_FILES = {'mace': 'mlff_compiled.model', 'nequip': 'model.nequip.pt2'}
VARIANTS = ('upstream', 'state-check', 'langevin', 'lean-mace', 'all')

SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import ase.io
from evaluate_model import build_calculator, import_engine, set_threads
set_threads(1)
from md_ensemble import exact_state_check, lean_mace_calculate, lean_run, make_dynamics
architecture, model, structure, variant = sys.argv[2:6]
steps, warm_up = int(sys.argv[6]), 20
import_engine(architecture)
config = {'timestep_fs': 1.0, 'temperature_K': 300.0, 'thermostat': 'langevin', 'coupling': 0.001}
calc = build_calculator(architecture, __import__('pathlib').Path(model), None, 'cpu')
if variant == 'lean-mace' or (variant == 'all' and architecture == 'mace'):
    calc.calculate = lean_mace_calculate(calc)
if variant in ('state-check', 'all'):
    calc.check_state = exact_state_check(calc)
atoms = ase.io.read(structure)
atoms.calc = calc
rng = np.random.default_rng(0)
atoms.set_velocities(rng.normal(0.0, 0.01, (len(atoms), 3)))
dynamics = make_dynamics(atoms, config, rng)
run = lean_run(dynamics, fast=variant in ('langevin', 'all'))
run(warm_up)
started = time.perf_counter()
run(steps)
print(json.dumps((time.perf_counter() - started) / steps * 1e6))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=150)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--models', default='mace,nequip')
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
                for repeat in range(args.repeats):  # each variant in its own process, the order rotated per repeat
                    for variant in variants[repeat % len(variants) :] + variants[: repeat % len(variants)]:
                        command = [str(python), '-c', SCRIPT, str(driver_path('md_ensemble').parent), architecture]
                        command += [str(model), str(structure), variant, str(args.steps)]
                        done = subprocess.run(command, capture_output=True, text=True, check=False)
                        if done.returncode:
                            lines = done.stderr.strip().splitlines() or ['']
                            print(f'{architecture} {len(atoms)} atoms {variant}: FAILED {lines[-1][:200]}', flush=True)
                            continue
                        times[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                timing = {variant: statistics.median(values) for variant, values in times.items() if values}
                if 'upstream' not in timing:
                    continue
                rows.append((architecture, len(atoms), timing))
                print(f'{architecture} {len(atoms)} atoms: ' + ', '.join(f'{k} {v:.0f} µs' for k, v in timing.items()))
    print('\nµs per MD step (median of repeats), gain = upstream / variant − 1')
    print(f'{"model":7} {"atoms":>5} | ' + ' | '.join(f'{v:>18}' for v in VARIANTS))
    for architecture, n_atoms, timing in rows:
        cells = []
        for variant in VARIANTS:
            if variant not in timing:
                cells.append(f'{"—":>18}')
                continue
            gain = timing['upstream'] / timing[variant] - 1
            cells.append(f'{timing[variant]:8.0f} ({gain:+6.1%})')
        print(f'{architecture:7} {n_atoms:5d} | ' + ' | '.join(cells))
    return 0


if __name__ == '__main__':
    sys.exit(main())
