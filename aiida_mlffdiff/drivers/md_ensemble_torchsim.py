#!/usr/bin/env python
"""Run N independent MD replicas of one model at one temperature with torch-sim, batched (no AiiDA import).

Shipped into a CalcJob's folder next to ``md_ensemble.py`` (the ASE driver, whose checks' constants and command line
``run_driver`` it imports, so that both engines read the same ``md_ensemble.json`` and write the same
``md_ensemble.npz`` / ``md_ensemble_info.json`` for the same parser) and ``evaluate_model.py``; run by the python of
a torch-sim environment (Python >= 3.12, ``torch-sim-atomistic`` 0.6.2)::

    python md_ensemble_torchsim.py --config md_ensemble.json

The replicas are split into ``workers`` contiguous chunks (processes, one thread each, as in the ASE driver); each
chunk is one batched :class:`torch_sim.SimState` (one system per replica, the same cell): every MD step is ONE model
call for all replicas of the chunk. Models (torch-sim wrappers):

- ``nequip``: ``nequip.integrations.torchsim.NequIPTorchSimCalc.from_compiled_model`` — a ``.nequip.pt2`` compiled
  with ``nequip-compile --target batch`` under the torch of this environment (the ``ase`` target has static
  single-frame shapes and is refused by the loader);
- ``deepmd``: ``deepmd_torchsim.DeepmdModel`` on a frozen ``.pth`` (``dp --pt freeze``), the file the ASE engine uses;
- ``mace``: ``torch_sim.models.mace.MaceModel`` on the compiled (TorchScript) ``*_compiled.model``.

Dynamics (torch-sim 0.6.2 integrators, metal units; positions are never wrapped, so they are unwrapped):

- ``langevin``: ``nvt_langevin_init/step`` (BAOAB), friction ``coupling`` in 1/fs (default 0.001/fs = 1/ps);
- ``bussi``: ``nvt_vrescale_init/step`` (CSVR), ``tau`` = ``coupling`` fs (default 100 fs);
- ``nose_hoover``: ``nvt_nose_hoover_init/step`` (chain of 3), ``tau`` = ``coupling`` fs (default 100 fs).

Randomness: each chunk has one torch generator, seeded from the list of its replicas' seeds (numpy
``SeedSequence(seeds)``): the same seeds in the same order with the same ``workers`` give the same trajectories (up
to float round-off of the batched model), but a replica's trajectory depends on the seeds of its chunk (unlike the
ASE engine, where replica i depends on seed i only). Initial momenta: Maxwell–Boltzmann at the target temperature,
total momentum of each replica removed.

Checks, statuses and outputs as in ``md_ensemble.py`` (every sampling interval, per replica: ``nan``,
``atoms_too_close``, ``temperature_runaway``; ``error`` when the batched model call raises, for every replica still
running). A failed replica is taken out of the batch; the others go on. The energy drift is that of the
Nosé–Hoover invariant for ``nose_hoover``, and of the plain total energy for ``langevin`` and ``bussi`` (conserved by
neither: a flag of gross errors only).

Timings in ``md_ensemble_info.json``: ``model_s`` is the time inside the model's forward (the batched call), the
rest of ``md_wall_s`` is the integrator, checks and sampling (``model_share``); per-replica ``wall_s`` and
``model_s`` are the batch's divided by the number of replicas, so that their sums are the process's times.

Exit status: 0 success (whatever the replicas' statuses), 2 bad configuration, 3 the model (or torch-sim, or the
engine package) does not load, 5 the MD could not run at all.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# the sibling drivers, shipped next to this one
from evaluate_model import EXIT_MODEL_LOAD_FAILED, DriverError, set_threads, version
from md_core import DEFAULT_COUPLING, replica_record, sample_problem
from md_ensemble import run_driver

#: Architectures this driver can batch, and the distribution of their torch-sim wrapper.
TORCHSIM_WRAPPERS = {'nequip': 'nequip', 'deepmd': 'deepmd-torchsim', 'mace': 'mace-torch'}
ENGINE_DISTRIBUTIONS = {'nequip': 'nequip', 'deepmd': 'deepmd-kit', 'mace': 'mace-torch'}


def load_model(architecture: str, model: Path, device: str):
    """The torch-sim ``ModelInterface`` of a model file (forces on, stress off: NVT needs none)."""
    try:
        import torch_sim  # noqa: F401
    except Exception as exception:
        raise DriverError(
            'model_load_failed',
            EXIT_MODEL_LOAD_FAILED,
            f'torch-sim cannot be imported by {sys.executable} ({type(exception).__name__}: {exception}): run this '
            'driver with the python of a torchsim-* environment.',
        ) from exception
    if architecture not in TORCHSIM_WRAPPERS:
        raise DriverError(
            'bad_config',
            2,
            f'the torch-sim engine cannot run {architecture} models (it runs {", ".join(TORCHSIM_WRAPPERS)}).',
        )
    if not model.is_file():
        raise DriverError('model_load_failed', EXIT_MODEL_LOAD_FAILED, f'model file {model} does not exist.')
    try:
        if architecture == 'nequip':
            from nequip.integrations.torchsim import NequIPTorchSimCalc

            wrapped = NequIPTorchSimCalc.from_compiled_model(str(model), device=device)
            wrapped.compute_stress = False
        elif architecture == 'deepmd':
            from deepmd_torchsim import DeepmdModel

            wrapped = DeepmdModel(model_path=str(model), device=device, compute_forces=True, compute_stress=False)
        else:
            import torch
            from torch_sim.models.mace import MaceModel

            module = torch.jit.load(str(model), map_location=device)
            dtype = next(module.parameters()).dtype
            wrapped = MaceModel(model=module, device=torch.device(device), dtype=dtype, compute_stress=False)
    except Exception as exception:
        traceback.print_exc()
        detail = str(exception).strip().splitlines()[0] if str(exception).strip() else ''
        hint = (
            ' -- torch-sim needs a model compiled with `nequip-compile --target batch` under the torch of this '
            'environment'
            if architecture == 'nequip'
            else ''
        )
        raise DriverError(
            'model_load_failed',
            EXIT_MODEL_LOAD_FAILED,
            f'{architecture} (torch-sim) could not load {model} with {sys.executable} (torch {version("torch")}): '
            f'{type(exception).__name__}: {detail}{hint}',
        ) from exception
    return wrapped


def timed(model) -> dict:
    """Wrap ``model.forward`` to accumulate the seconds spent in it; returns the live timer dict."""
    timer = {'model_s': 0.0, 'calls': 0}
    original = model.forward

    def forward(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timer['model_s'] += time.perf_counter() - started
            timer['calls'] += 1

    model.forward = forward
    return timer


def batch_seed(seeds: list[int]) -> int:
    """One 63-bit seed for the batch's generator, derived reproducibly from all replica seeds."""
    import numpy as np

    return int(np.random.SeedSequence([int(s) for s in seeds]).generate_state(1, dtype=np.uint64)[0] >> 1)


def integrator(config: dict):
    """``(init, step, invariant)`` closures of the configured thermostat, in torch-sim's metal units."""
    import torch_sim as ts
    from torch_sim.units import MetalUnits

    thermostat = config['thermostat']
    coupling = config.get('coupling') or DEFAULT_COUPLING[thermostat]
    kT = float(config['temperature_K']) * MetalUnits.temperature  # eV
    dt = float(config['timestep_fs']) * 1e-3 * MetalUnits.time  # fs → ps → internal
    if thermostat == 'langevin':
        gamma = coupling * 1e3 / MetalUnits.time  # 1/fs → 1/ps → internal

        def init(state, model):
            return ts.nvt_langevin_init(state, model, kT=kT)

        def step(state, model):
            return ts.nvt_langevin_step(state, model, dt=dt, kT=kT, gamma=gamma)

        return init, step, None
    tau = coupling * 1e-3 * MetalUnits.time  # fs → internal
    if thermostat == 'bussi':

        def init(state, model):
            return ts.nvt_vrescale_init(state, model, kT=kT)

        def step(state, model):
            return ts.nvt_vrescale_step(model=model, state=state, dt=dt, kT=kT, tau=tau)

        return init, step, None

    def init(state, model):
        return ts.nvt_nose_hoover_init(state, model, kT=kT, dt=dt, tau=tau)

    def step(state, model):
        return ts.nvt_nose_hoover_step(state, model, dt=dt, kT=kT)

    def invariant(state):
        return ts.nvt_nose_hoover_invariant(state, kT)

    return init, step, invariant


def check_batch(state, template, target_K: float) -> list[tuple[str, str]]:
    """Per system of the batch: ``('ok', '')`` or the problem and a one-line message (as ``md_ensemble.check``)."""

    n_atoms = len(template)
    positions = state.positions.detach().cpu().numpy().reshape(-1, n_atoms, 3)
    forces = state.forces.detach().cpu().numpy().reshape(-1, n_atoms, 3)
    energies = state.energy.detach().cpu().numpy().reshape(-1)
    temperatures = state.calc_temperature().detach().cpu().numpy().reshape(-1)
    cell = template.cell[:]
    return [
        sample_problem(positions[system], cell, float(energies[system]), forces[system], temperatures[system], target_K)
        for system in range(positions.shape[0])
    ]


_MODEL = {}


def chunk_model(config: dict):
    """The model and its timer of this process (loaded once per process)."""
    if 'model' not in _MODEL:
        set_threads(int(config.get('threads', 1)))
        model = load_model(config['architecture'], Path(config['model']), config.get('device', 'cpu'))
        _MODEL.update(model=model, timer=timed(model))
    return _MODEL['model'], _MODEL['timer']


def run_chunk(task: tuple[dict, list[int]]) -> list[dict]:
    """One worker's share: its replicas (indices into the seeds) as one batch."""
    config, indices = task
    model, timer = chunk_model(config)
    results = run_batch({**config, 'seeds': [config['seeds'][i] for i in indices]}, model, timer)
    for result, index in zip(results, indices, strict=True):
        result['index'] = index
    return results


def chunks(n_replicas: int, workers: int) -> list[list[int]]:
    """Contiguous, nearly equal chunks of replica indices, one per worker (no empty chunk)."""
    workers = max(1, min(workers, n_replicas))
    bounds = [round(k * n_replicas / workers) for k in range(workers + 1)]
    return [list(range(bounds[k], bounds[k + 1])) for k in range(workers)]


def run_ensemble(config: dict) -> list[dict]:
    """Every replica, chunk by chunk over ``workers`` processes (the main process's model when there is one)."""
    import multiprocessing

    parts = chunks(len(config['seeds']), int(config.get('workers', 1)))
    tasks = [(config, part) for part in parts]
    if len(tasks) == 1:
        return run_chunk(tasks[0])
    context = multiprocessing.get_context(config.get('start_method', 'spawn'))
    with context.Pool(processes=len(tasks)) as pool:
        results = [result for part in pool.map(run_chunk, tasks, chunksize=1) for result in part]
    return sorted(results, key=lambda result: result['index'])


def run_batch(config: dict, model, timer: dict) -> list[dict]:
    """All replicas in one batched state; returns one result dict per replica (the ASE driver's layout)."""
    import ase.io
    import numpy as np
    import torch
    import torch_sim as ts

    started, cpu_started = time.perf_counter(), time.process_time()
    model_before = timer['model_s']
    template = ase.io.read(config['structure'], format='extxyz')
    template.calc = None
    seeds = [int(seed) for seed in config['seeds']]
    n_replicas, n_atoms = len(seeds), len(template)
    symbols = np.array(template.get_chemical_symbols())
    mobile = np.flatnonzero(symbols == config['mobile_species'])
    framework = np.flatnonzero(symbols != config['mobile_species'])
    masses = template.get_masses()
    weights = masses[framework] / masses[framework].sum() if framework.size else None

    target = float(config['temperature_K'])
    stride = round(config['sampling_interval_fs'] / config['timestep_fs'])
    sample_ps = config['sampling_interval_fs'] / 1000.0
    n_equilibration = round(config['equilibration_ps'] / sample_ps)
    n_frames = round(config['production_ps'] / sample_ps) + 1
    positions = np.full((n_replicas, n_frames, mobile.size, 3), np.nan)
    com = np.full((n_replicas, n_frames, 3), np.nan)
    com0 = [None] * n_replicas
    temperatures = [[] for _ in range(n_replicas)]
    energies = [[] for _ in range(n_replicas)]
    status = ['ok'] * n_replicas
    message = [''] * n_replicas
    done = [0] * n_replicas
    steps_done = [0] * n_replicas
    active = list(range(n_replicas))  # replica index of each system of the batch, in order

    init, step, invariant = integrator(config)
    state = ts.initialize_state([template.copy() for _ in seeds], model.device, model.dtype)
    state.rng = batch_seed(seeds)

    def retire(checks: list[tuple[str, str]], where: str) -> None:
        nonlocal state, active
        keep = []
        for system, (word, text) in enumerate(checks):
            if word == 'ok':
                keep.append(system)
            else:
                status[active[system]], message[active[system]] = word, f'{where}: {text}'
        if len(keep) < len(active):
            active = [active[system] for system in keep]
            if keep:
                state = state[torch.tensor(keep, device=state.device)]

    def advance(n_steps: int) -> None:
        nonlocal state
        for _ in range(n_steps):
            state = step(state, model)
        for replica in active:
            steps_done[replica] += n_steps

    try:
        state = init(state, model)
        retire(check_batch(state, template, target), 'start')
        for _ in range(n_equilibration):
            if not active:
                break
            advance(stride)
            retire(check_batch(state, template, target), 'equilibration')
        for frame in range(n_frames):
            if not active:
                break
            if frame:
                advance(stride)
                retire(check_batch(state, template, target), f'production frame {frame}')
                if not active:
                    break
            now = state.positions.detach().cpu().numpy().reshape(-1, n_atoms, 3)
            kinetic = ts.calc_kinetic_energy(masses=state.masses, momenta=state.momenta, system_idx=state.system_idx)
            conserved = (invariant(state) if invariant is not None else state.energy + kinetic).detach().cpu().numpy()
            temperature = state.calc_temperature().detach().cpu().numpy().reshape(-1)
            for system, replica in enumerate(active):
                positions[replica, frame] = now[system][mobile]
                if weights is not None:
                    centre = weights @ now[system][framework]
                    com0[replica] = centre if com0[replica] is None else com0[replica]
                    com[replica, frame] = centre - com0[replica]
                else:
                    com[replica, frame] = 0.0
                temperatures[replica].append(float(temperature[system]))
                energies[replica].append(float(conserved[system]) / n_atoms)
                done[replica] = frame + 1
    except Exception as exception:
        traceback.print_exc()
        for replica in active:
            status[replica], message[replica] = 'error', f'{type(exception).__name__}: {exception}'

    elapsed = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    model_s = timer['model_s'] - model_before
    results = []
    for replica, seed in enumerate(seeds):
        record = replica_record(
            seed,
            status[replica],
            message[replica],
            positions[replica],
            com[replica],
            done[replica],
            temperatures[replica],
            energies[replica],
            sample_ps,
        )
        results.append(
            {
                'index': replica,
                **record,
                'wall_s': elapsed / n_replicas,
                'cpu_s': cpu_s / n_replicas,
                'model_s': model_s / n_replicas,
                'model_calls': timer['calls'],
                'md_steps': steps_done[replica],
                'atom_steps_per_s': steps_done[replica] * n_atoms * n_replicas / elapsed if elapsed > 0 else math.nan,
                'pid': os.getpid(),
                'mobile': mobile,
                'masses': masses,
                'species': symbols,
            }
        )
    return results


def versions(architecture: str) -> dict:
    distribution = ENGINE_DISTRIBUTIONS.get(architecture, architecture)
    return {
        'python': platform.python_version(),
        'numpy': version('numpy'),
        'ase': version('ase'),
        'torch': version('torch'),
        'torch_sim': version('torch-sim-atomistic'),
        'wrapper': f'{TORCHSIM_WRAPPERS.get(architecture, "")} {version(TORCHSIM_WRAPPERS.get(architecture, ""))}',
        'engine_package': distribution,
        'engine_version': version(distribution),
    }


def describe(config: dict) -> dict:
    """What the info JSON records about the run before it starts: workers, batch sizes, device, versions."""
    if not config.get('model'):
        raise DriverError('bad_config', 2, 'the torch-sim engine needs a model file (no pretrained models).')
    parts = chunks(len(config['seeds']), int(config.get('workers', 1)))
    return {
        'architecture': config['architecture'],
        'workers': len(parts),
        'threads_per_worker': int(config.get('threads', 1)),
        'device': config.get('device', 'cpu'),
        'batch_sizes': [len(part) for part in parts],
        'versions': versions(config['architecture']),
    }


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split('\n\n')[0]
    return run_driver('md_ensemble_torchsim', description, describe, chunk_model, run_ensemble, argv, engine='torchsim')


if __name__ == '__main__':
    sys.exit(main())
