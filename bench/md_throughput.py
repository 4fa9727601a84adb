"""Benchmark of the MD ensemble engines: atom-steps per second of our drivers against the peers, same model, same run.

Models: a tiny MACE, NequIP and DeePMD model (the ``moderate`` protocol's sizes: MACE 16 channels L=1, NequIP l_max 1
2 layers 16 features, DeePMD se_e2_a; trained for a few epochs/steps on rattled 52-atom Li6PS5Cl cells labelled by
a Lennard-Jones potential, so useless for physics but of production shape), trained once with the project's own
training writers in the engine environments and cached in ``~/.cache/aiida-mlffdiff/bench-models``. NequIP is
compiled twice from the same checkpoint: ``--target ase`` in the nequip environment (ASE) and ``--target batch`` in
the torchsim-nequip environment (torch-sim).

Cells: the ordered Li6PS5Cl conventional cell (52 atoms, ``aiida_mlffdiff.structures.argyrodite``) and its 2×2×2
repetition (416 atoms). NVT Langevin, 300 K, 1 fs, friction 1/ps.

Engines, each on the same model file(s), one after the other (never concurrently):

- ``ours-ase``: our ASE driver (``drivers/md_ensemble.py``), ``--replicas`` replicas over ``--workers`` processes
  (default: all cores), one thread each, sampling and checking every 10 steps as in production, on its pinned fast
  path (``fast_path: true``, what the protocols run);
- ``ours-ase-up`` (column ``ase-up``): the same driver on the upstream path (``fast_path: false``: ASE's ``run``,
  state check and calculators), to show what the fast path earns;
- ``ours-torchsim``: our torch-sim driver (``drivers/md_ensemble_torchsim.py``), the replicas split over
  ``--workers`` processes, each a batch (one model call per step for its replicas), one thread each;
- ``ase-seq`` (peer): plain ASE Langevin, one replica at a time in a single process with torch using
  ``--peer-threads`` threads (default: all cores), no sampling;
- ``torchsim`` (peer): plain ``torch_sim.integrate`` of all replicas batched in a single process
  (``--peer-threads`` threads), no sampling;
- ``lammps`` (peer, DeePMD only): ``lmp`` with ``pair_style deepmd`` from the project's ``lammps`` engine
  environment if it has been built (the column is skipped with the reason otherwise), one replica,
  ``--peer-threads`` threads; its own "Loop time".

Throughput = atom-steps / wall seconds of the MD loop (model loading and process start-up excluded everywhere;
first steps, i.e. warm-up, included everywhere). For our drivers the wall is that of the busiest worker (sum of
its replicas' times). "Overhead" = share of our driver's time spent outside the model call (ASE: outside the
calculator's ``calculate``; torch-sim: outside the batched ``forward``).

Targets (printed as OK / MISS): ours (the faster of our two drivers: that engine is the default for the
architecture) ≥ the best peer; overhead ≤ 5 %.

Usage::

    python bench/md_throughput.py [--quick] [--device cpu|cuda] [--models mace,nequip,deepmd] [--sizes 52,416]
                                  [--replicas N] [--workers N] [--peer-threads N] [--json PATH]

Always exits 0 when it ran (a benchmark, not a test); 2 when ``--device cuda`` has no GPU here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from aiida_mlffdiff.calculations.train import THREAD_ENVIRONMENT
from aiida_mlffdiff.calculations.writers import get_protocol_parameters, get_writer
from aiida_mlffdiff.drivers import DRIVERS_DIRECTORY
from aiida_mlffdiff.environments import ENGINES, EngineEnvironmentError, build_environment
from aiida_mlffdiff.environments.manager import MARKER, _interpreter, environment_root, requirements_hash

TEMPERATURE_K = 300.0
TIMESTEP_FS = 1.0
FRICTION_PER_FS = 0.001
SAMPLE_EVERY = 10  # steps, as in production (sampling_interval_fs = 10 fs)
TARGET_OVERHEAD = 0.05
#: Training: sizes of the moderate protocol, trained briefly (throughput does not depend on training length).
TRAINING_OVERRIDES = {
    'mace': {'max_epochs': 2, 'patience': 5},
    'nequip': {'max_epochs': 2},
    'deepmd': {'num_steps': 100, 'decay_steps': 50, 'disp_freq': 50, 'save_freq': 100},
}
TRAIN_KEY = {'mace': 'train', 'nequip': 'train', 'deepmd': 'dp'}
LJ = {'sigma': 1.8, 'epsilon': 0.02, 'rc': 5.0}  # Å, eV, Å


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------------- environments
def existing_environment(name: str) -> Path | None:
    """The built environment of ``name`` if it exists (never builds): used for the optional LAMMPS peer."""
    spec = ENGINES.get(name)
    if spec is None:
        return None
    try:
        _, python = _interpreter(spec)
    except EngineEnvironmentError:
        return None
    path = environment_root() / f'{name}-{requirements_hash(spec, python)}'
    return path if (path / MARKER).is_file() else None


def environment(name: str) -> Path | None:
    """The environment of ``name``, built if missing (cached); None (with the reason printed) if it cannot be."""
    try:
        return build_environment(ENGINES[name], log=log).path
    except (EngineEnvironmentError, KeyError) as exception:
        log(f'  environment {name} unavailable: {exception}')
        return None


def thread_environment(threads: int, device: str) -> dict[str, str]:
    variables = dict(os.environ)
    variables.update(
        {key: str(threads) if key.endswith('THREADS') else value for key, value in THREAD_ENVIRONMENT.items()}
    )
    variables['TORCHINDUCTOR_COMPILE_THREADS'] = '1'
    if device == 'cpu':
        variables['CUDA_VISIBLE_DEVICES'] = ''
    return variables


def run(command: list[str], cwd: Path, threads: int, device: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=thread_environment(threads, device),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if result.returncode != 0:
        tail = '\n'.join((result.stdout + result.stderr).strip().splitlines()[-12:])
        raise RuntimeError(f'`{" ".join(map(str, command[:4]))} ...` failed ({result.returncode}):\n{tail}')
    return result


# --------------------------------------------------------------------------------------------------------- models
def cells() -> dict[int, object]:
    from aiida_mlffdiff.structures.argyrodite import li6ps5cl

    small = li6ps5cl(cell='conventional')
    return {len(small): small, 8 * len(small): small.repeat((2, 2, 2))}


def training_data(cell, n: int, seed: int) -> list:
    """Rattled, strained copies of ``cell`` labelled by Lennard-Jones (energy eV, forces eV/Å, stress eV/Å³)."""
    from ase.calculators.lj import LennardJones
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    configurations = []
    for _ in range(n):
        atoms = cell.copy()
        strain = rng.normal(0.0, 0.01, size=(3, 3))
        atoms.set_cell(atoms.cell[:] @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.08, size=atoms.positions.shape)
        atoms.calc = LennardJones(**LJ)
        results = {'energy': atoms.get_potential_energy(), 'forces': atoms.get_forces()}
        atoms.calc = SinglePointCalculator(atoms, **results)
        configurations.append(atoms)
    return configurations


def train_model(architecture: str, cell, environments: dict[str, Path | None], cache: Path) -> dict[str, Path]:
    """Model file(s) of ``architecture``: ``{'ase': path, 'torchsim': path}``, trained once and cached."""
    writer = get_writer(architecture)
    values = writer.validate(get_protocol_parameters(architecture, 'moderate', TRAINING_OVERRIDES[architecture]))
    pins = [ENGINES[name].install_steps for name in (architecture, f'torchsim-{architecture}') if name in ENGINES]
    key = hashlib.sha256(json.dumps({'values': values, 'pins': pins}, sort_keys=True).encode()).hexdigest()[:12]
    directory = cache / f'{architecture}-{key}'
    files = {'ase': directory / writer.model_filename}
    if architecture == 'nequip':
        files['torchsim'] = directory / 'model.batch.nequip.pt2'
    else:
        files['torchsim'] = files['ase']
    if (directory / 'done').is_file():
        return files
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    species = sorted(set(cell.get_chemical_symbols()))
    log(f'  training a tiny {architecture} model in {directory} (once)')
    started = time.perf_counter()
    jobs = writer.write(
        directory,
        training_data(cell, 12, 0),
        training_data(cell, 4, 1),
        values,
        species=species,
        seed=1,
        use_stress=False,
    )
    env = environments[architecture]
    spec = ENGINES[architecture]
    for command in jobs.commands:
        if architecture == 'deepmd' and command.arguments[:2] == ('--pt', 'test'):
            continue
        executable = env / 'bin' / spec.executables[TRAIN_KEY[architecture] if command.code == 'code' else 'compile']
        run([executable, *command.arguments], directory, 1, 'cpu')
    if architecture == 'nequip' and environments.get('ts-nequip') is not None:
        compile_ = environments['ts-nequip'] / 'bin' / 'nequip-compile'
        arguments = [
            'best.ckpt',
            files['torchsim'].name,
            '--mode',
            'aotinductor',
            '--device',
            'cpu',
            '--target',
            'batch',
        ]
        run([compile_, *arguments], directory, 1, 'cpu')
    (directory / 'done').write_text(f'{time.perf_counter() - started:.0f} s\n')
    log(f'  trained {architecture} in {time.perf_counter() - started:.0f} s')
    return files


# ---------------------------------------------------------------------------------------------------------- runs
def our_driver(
    engine: str, python: Path, architecture: str, model: Path, structure: Path, args, steps: int, work: Path
):
    """Run one of our drivers; returns atom-steps per wall and per CPU second, overhead share, replicas ok.

    ``engine``: ``ase`` (fast path), ``ase-up`` (the ASE driver's upstream path) or ``torchsim``.
    """
    fast_path = engine != 'ase-up'
    engine = engine.removesuffix('-up')
    config = {
        'architecture': architecture,
        'model': str(model),
        'pretrained': None,
        'structure': str(structure),
        'temperature_K': TEMPERATURE_K,
        'timestep_fs': TIMESTEP_FS,
        'equilibration_ps': 0.0,
        'production_ps': steps * TIMESTEP_FS / 1000.0,
        'sampling_interval_fs': SAMPLE_EVERY * TIMESTEP_FS,
        'thermostat': 'langevin',
        'coupling': FRICTION_PER_FS,
        'mobile_species': 'Li',
        'seeds': list(range(args.replicas)),
        'workers': args.workers,
        'threads': 1,
        'device': args.device,
        'engine': engine,
        'fast_path': fast_path,
    }
    (work / 'md_ensemble.json').write_text(json.dumps(config))
    driver = DRIVERS_DIRECTORY / ('md_ensemble.py' if engine == 'ase' else 'md_ensemble_torchsim.py')
    run([python, driver, '--config', 'md_ensemble.json'], work, 1, args.device)
    info = json.loads((work / 'md_ensemble_info.json').read_text())
    if engine == 'ase' and info['fast_path']['used'] != fast_path:
        raise RuntimeError(f'fast_path {fast_path} asked, the driver says {info["fast_path"]}')
    busiest: dict[int, float] = {}
    for replica in info['replicas']:
        busiest[replica['pid']] = busiest.get(replica['pid'], 0.0) + replica['wall_s']
    wall = max(busiest.values())
    cpu = sum(replica['cpu_s'] for replica in info['replicas'])
    return {
        'wall': info['atom_steps'] / wall,
        'cpu': info['atom_steps'] / cpu,
        'overhead': 1.0 - info['timing']['model_share'],
        'ok': sum(r['status'] == 'ok' for r in info['replicas']),
    }


PEER_ASE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from evaluate_model import build_calculator, import_engine, set_threads
set_threads(int(sys.argv[6]))
import ase.io
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
architecture, model, structure = sys.argv[2], sys.argv[3], sys.argv[4]
replicas, steps = int(sys.argv[5]), int(sys.argv[7])
import_engine(architecture)
calc = build_calculator(architecture, __import__('pathlib').Path(model), None, sys.argv[8])
wall = cpu = 0.0
for seed in range(replicas):
    atoms = ase.io.read(structure)
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300.0, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, 1.0 * units.fs, temperature_K=300.0, friction=0.001 / units.fs, rng=rng)
    started, cpu_started = time.perf_counter(), time.process_time()
    dynamics.run(steps)
    wall += time.perf_counter() - started
    cpu += time.process_time() - cpu_started
print(json.dumps({'wall': replicas * steps * len(atoms) / wall, 'cpu': replicas * steps * len(atoms) / cpu}))
"""

PEER_TORCHSIM = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from evaluate_model import set_threads
set_threads(int(sys.argv[6]))
import ase.io
import torch_sim as ts
from md_ensemble_torchsim import load_model
architecture, model, structure = sys.argv[2], sys.argv[3], sys.argv[4]
replicas, steps = int(sys.argv[5]), int(sys.argv[7])
wrapped = load_model(architecture, __import__('pathlib').Path(model), sys.argv[8])
atoms = ase.io.read(structure)
started, cpu_started = time.perf_counter(), time.process_time()
ts.integrate(system=[atoms.copy() for _ in range(replicas)], model=wrapped, integrator=ts.Integrator.nvt_langevin,
             n_steps=steps, temperature=300.0, timestep=0.001, gamma=1.0)
wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
print(json.dumps({'wall': replicas * steps * len(atoms) / wall, 'cpu': replicas * steps * len(atoms) / cpu}))
"""


def peer(script: str, python: Path, architecture: str, model: Path, structure: Path, args, steps: int, work: Path):
    path = work / 'peer.py'
    path.write_text(script)
    command = [python, path, DRIVERS_DIRECTORY, architecture, model, structure, args.replicas, args.peer_threads, steps]
    result = run([*command, args.device], work, args.peer_threads, args.device)
    return json.loads(result.stdout.strip().splitlines()[-1])


LAMMPS_INPUT = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style deepmd {model}
pair_coeff * * {species}
timestep 0.001
velocity all create 300.0 12345 mom yes rot no dist gaussian
fix 1 all nve
fix 2 all langevin 300.0 300.0 1.0 4321 zero yes
thermo 1000
run {steps}
"""


def peer_lammps(lammps: Path, model: Path, cell, args, steps: int, work: Path) -> float:
    import ase.io

    species = sorted(set(cell.get_chemical_symbols()))
    ase.io.write(work / 'data.lmp', cell, format='lammps-data', specorder=species, masses=True)
    (work / 'in.lammps').write_text(LAMMPS_INPUT.format(model=model, species=' '.join(species), steps=steps))
    result = run([lammps / 'bin' / 'lmp', '-in', 'in.lammps', '-log', 'none'], work, args.peer_threads, args.device)
    match = re.search(r'Loop time of ([0-9.eE+-]+) on', result.stdout)
    if not match:
        raise RuntimeError('no "Loop time" in the LAMMPS output')
    wall = float(match.group(1))
    usage = re.search(r'([0-9.]+)% CPU use', result.stdout)
    cpu = wall * float(usage.group(1)) / 100 if usage else wall
    return {'wall': steps * len(cell) / wall, 'cpu': steps * len(cell) / cpu}


def measure(name, architecture, files, environments, lammps, cell, structure, args, steps, work):
    """One column of the table: our drivers return (atom-steps/s, overhead, replicas ok), peers atom-steps/s."""
    if name == 'lammps':
        return peer_lammps(lammps, files['ase'], cell, args, steps, work)
    torchsim = 'torchsim' in name
    python = environments[f'ts-{architecture}' if torchsim else architecture] / 'bin' / 'python'
    model = files['torchsim' if torchsim else 'ase']
    if name.startswith('ours-'):
        return our_driver(name.removeprefix('ours-'), python, architecture, model, structure, args, steps, work)
    script = PEER_TORCHSIM if torchsim else PEER_ASE
    return peer(script, python, architecture, model, structure, args, steps, work)


def print_table(rows: list[dict], metric: str, title: str) -> None:
    """One table: our two drivers, the peers, ours (the faster driver per wall second) / the best peer, overhead."""

    def text(value):
        return f'{value:9,.0f}' if value else f'{"—":>9}'

    log('')
    log(title)
    header = (
        f'{"model":7} {"atoms":>5} | {"ours-ase":>9} {"ours-ts":>9} {"ase-up":>9} | '
        f'{"ase-seq":>9} {"torchsim":>9} {"lammps":>9} | '
        f'{"ours":>8} {"ours/best":>9} {"overhead":>8} | load'
    )
    log(header)
    log('-' * len(header))
    for row in rows:
        engine = max(('ours-ase', 'ours-torchsim'), key=lambda k: row.get(k) or 0.0)
        ours = row.get(f'{engine}{metric}') or 0.0
        peers = [row.get(f'{k}{metric}') for k in ('ase-seq', 'torchsim', 'lammps') if row.get(f'{k}{metric}')]
        best = max(peers) if peers else None
        ratio = ours / best if best else None
        overhead = row.get(f'{engine}_overhead')
        row['ours_engine'] = engine.removeprefix('ours-')
        row[f'ratio{metric}'] = ratio
        row['overhead'] = overhead
        verdict = []
        if ratio is not None:
            verdict.append('OK' if ratio >= 1 else 'MISS')
        if overhead is not None:
            verdict.append('OK' if overhead <= TARGET_OVERHEAD else 'MISS')
        ours_columns = ' '.join(text(row.get(f'{k}{metric}')) for k in ('ours-ase', 'ours-torchsim', 'ours-ase-up'))
        peer_columns = ' '.join(text(row.get(f'{k}{metric}')) for k in ('ase-seq', 'torchsim', 'lammps'))
        log(
            f'{row["model"]:7} {row["atoms"]:5d} | {ours_columns} | {peer_columns} | {row["ours_engine"]:>8} '
            f'{ratio or float("nan"):9.2f} {100 * (overhead if overhead is not None else float("nan")):7.1f}% | '
            f'{np.mean(row["load"]) if row["load"] else float("nan"):4.1f}  {" ".join(verdict)}'
        )
        if not metric:
            for key in [k for k in row if k.endswith('_error')]:
                log(f'    {key.removesuffix("_error")}: {row[key]}')


# ---------------------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='few steps and replicas: a few minutes in all')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--models', default='mace,nequip,deepmd')
    parser.add_argument('--sizes', default='52,416', help='cell sizes (atoms): 52 and/or 416')
    parser.add_argument('--replicas', type=int, default=None, help='replicas per run (default 8; quick 4)')
    parser.add_argument('--workers', type=int, default=cores, help=f'our drivers: processes (default {cores})')
    parser.add_argument('--peer-threads', type=int, default=cores, help=f'peers: torch threads (default {cores})')
    parser.add_argument('--steps', type=int, default=None, help='MD steps on 52 atoms (416 atoms: a quarter)')
    parser.add_argument('--json', type=Path, default=None)
    parser.add_argument('--cache', type=Path, default=Path.home() / '.cache' / 'aiida-mlffdiff' / 'bench-models')
    args = parser.parse_args(argv)
    args.replicas = args.replicas or (4 if args.quick else 8)
    args.steps = args.steps or (40 if args.quick else 200)
    return args


def cuda_available(python: Path) -> bool:
    code = 'import torch; print(torch.cuda.is_available())'
    result = subprocess.run([str(python), '-c', code], capture_output=True, text=True, check=False)
    return result.stdout.strip() == 'True'


def main(argv=None) -> int:
    args = parse_args(argv)
    models = [m for m in args.models.split(',') if m]
    sizes = [int(s) for s in args.sizes.split(',') if s]
    log(
        f'md_throughput: models {", ".join(models)}; cells {sizes} atoms; {args.replicas} replicas; '
        f'{args.steps} steps on 52 atoms ({max(SAMPLE_EVERY, args.steps // 4 // SAMPLE_EVERY * SAMPLE_EVERY)} on 416); '
        f'ours: {args.workers} processes × 1 thread; peers: 1 process × {args.peer_threads} threads; '
        f'device {args.device}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start'
    )
    environments: dict[str, Path | None] = {}
    for architecture in models:
        environments[architecture] = environment(architecture)
        environments[f'ts-{architecture}'] = environment(f'torchsim-{architecture}')
    lammps = existing_environment('lammps') if 'deepmd' in models else None
    if 'deepmd' in models and lammps is None:
        log(
            '  LAMMPS column skipped: the lammps engine environment is not built '
            '(aiida-mlffdiff setup --engines lammps)'
        )
    if args.device == 'cuda':
        probe = next((p for p in environments.values() if p is not None), None)
        if probe is None or not cuda_available(probe / 'bin' / 'python'):
            log(
                '--device cuda: no CUDA device is visible to the engine environments on this machine (CPU only here); '
                'run the benchmark on a GPU machine, or use --device cpu.'
            )
            return 2
    all_cells = cells()
    rows = []
    with tempfile.TemporaryDirectory(prefix='md_throughput-') as scratch:
        scratch = Path(scratch)
        for architecture in models:
            if environments[architecture] is None:
                continue
            files = train_model(architecture, all_cells[52], environments, args.cache)
            for size in sizes:
                cell = all_cells[size]
                steps = args.steps if size == 52 else max(SAMPLE_EVERY, args.steps // 4 // SAMPLE_EVERY * SAMPLE_EVERY)
                structure = scratch / f'cell-{size}.extxyz'
                cell.write(structure, format='extxyz')
                row = {'model': architecture, 'atoms': size, 'steps': steps, 'replicas': args.replicas, 'load': []}
                names = ['ours-ase', 'ours-torchsim', 'ours-ase-up', 'ase-seq', 'torchsim']
                if architecture == 'deepmd' and lammps is not None:
                    names.append('lammps')
                for name in names:
                    if 'torchsim' in name and (
                        environments[f'ts-{architecture}'] is None or not files['torchsim'].is_file()
                    ):
                        row[name] = None
                        row[f'{name}_error'] = 'no torch-sim environment or model'
                        continue
                    work = scratch / f'{architecture}-{size}-{name}'
                    work.mkdir()
                    row['load'].append(os.getloadavg()[0])
                    try:
                        result = measure(
                            name, architecture, files, environments, lammps, cell, structure, args, steps, work
                        )
                    except Exception as exception:  # a failed column is reported, the others go on
                        row[name] = None
                        lines = str(exception).strip().splitlines() or ['']
                        row[f'{name}_error'] = f'{lines[0][:120]} … {lines[-1][:200]}'
                        log(f'  {architecture} {size} atoms {name}: FAILED {row[f"{name}_error"]}')
                        continue
                    row[name], row[f'{name}_cpu'] = result['wall'], result['cpu']
                    if name.startswith('ours'):
                        row[f'{name}_overhead'], row[f'{name}_ok'] = result['overhead'], result['ok']
                    log(
                        f'  {architecture} {size} atoms {name}: {result["wall"]:,.0f} atom-steps per wall s, '
                        f'{result["cpu"]:,.0f} per CPU s (load {row["load"][-1]:.1f})'
                    )
                rows.append(row)

    for metric, title in (('', 'per wall second (what the machine delivers now)'), ('_cpu', 'per CPU second')):
        print_table(rows, metric, f'atom-steps {title}, {args.replicas} replicas')
    log(
        f'ours = the faster of our drivers per wall second (its engine is the default for the model; ase-up: our ASE '
        f'driver without its fast path, for comparison only); ours/best = '
        f"ours / the best peer; overhead = share of our driver's time outside the model call (target ≤ "
        f'{TARGET_OVERHEAD:.0%}); load = 1-minute load average during the row ({os.cpu_count()} cores).'
    )
    if args.json:
        args.json.write_text(
            json.dumps({'arguments': {k: str(v) for k, v in vars(args).items()}, 'rows': rows}, indent=2)
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
