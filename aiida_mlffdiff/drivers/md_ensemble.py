#!/usr/bin/env python
"""Run N independent MD replicas of one model at one temperature with ASE (stand-alone driver, no AiiDA import).

Shipped into a CalcJob's folder next to ``evaluate_model.py`` (whose calculator builder it imports, so that both
drivers load models the same way) and run by the python of the ENGINE environment::

    python md_ensemble.py --config md_ensemble.json

The configuration (JSON) names the model (``architecture``, ``model`` file or ``pretrained`` name), the structure
file (extxyz, the cell the MD runs in), the MD settings (``temperature_K``, ``timestep_fs``, ``equilibration_ps``,
``production_ps``, ``sampling_interval_fs``, ``thermostat`` and its ``coupling``), the ``mobile_species``, the
replica ``seeds`` and the number of ``workers`` (processes; one thread each).

Dynamics (ASE 3.29; positions are never wrapped by the integrators, so ``atoms.positions`` are unwrapped):

- ``langevin`` (default): :class:`ase.md.langevin.Langevin`, ``coupling`` = friction in 1/fs, default 0.001/fs
  (1/ps). A friction γ slows diffusion by roughly 1/(1 + γτ) with τ the velocity-correlation time (≈ 0.05–0.2 ps
  for Li in solids): 1/ps keeps the bias at the per-cent level while still thermalising within a few ps; the
  0.01–0.02/fs often used for equilibration would damp D by tens of per cent.
- ``bussi``: :class:`ase.md.bussi.Bussi` (stochastic velocity rescaling), ``coupling`` = τ in fs (default 100 fs).
- ``nose_hoover``: :class:`ase.md.nose_hoover_chain.NoseHooverChainNVT` (chain of 3), ``coupling`` = damping
  time in fs (default 100 fs).

Initial velocities: Maxwell–Boltzmann at the target temperature from the replica's seed (total momentum removed);
the thermostat's noise uses the same seeded generator, so a replica is reproducible from its seed.

Every sampling interval (equilibration included) a replica is checked; the first problem stops it and is
recorded as its status: ``nan`` (non-finite positions, energy or forces), ``atoms_too_close`` (two atoms closer
than 0.5 Å), ``temperature_runaway`` (instantaneous T above 3 × the target) or ``error`` (the model raised).
The other replicas go on.

Writes

- ``md_ensemble.npz``: ``positions_A`` (n_replicas, n_frames, n_mobile, 3) unwrapped positions of the mobile
  ions, ``framework_com_A`` (n_replicas, n_frames, 3) displacement of the framework's centre of mass (masses)
  from the first production frame, ``time_ps`` (n_frames,) from 0, ``n_frames_done`` (n_replicas,),
  ``temperature_mean_K``, ``temperature_std_K`` (production), ``energy_drift_eV_atom_ps`` (slope of the
  conserved energy of the thermostat — total energy + thermostat energy for Bussi and Nosé–Hoover; the plain
  total energy for Langevin, which conserves nothing, so there it only flags gross errors), ``seeds``,
  ``status`` (n_replicas,) strings, ``mobile_indices``, ``masses`` and ``species``. Frames a replica did not
  reach are NaN.
- ``md_ensemble_info.json``: ``status``, ``message``, versions, worker/thread counts, per-replica messages and
  timings (s) including the share of time spent in the model, the peak resident memory (``peak_rss_MB``: the
  driver process and, separately, its worker processes) and the ``hardware`` it ran on (CPU model, cores, machine).

Exit status: 0 success (whatever the replicas' statuses: the parser judges them), 2 bad configuration, 3 the
model (or its engine package) does not load, 5 the MD could not run at all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# the sibling driver, shipped next to this one
from evaluate_model import (
    ENGINE_PACKAGES,
    EXIT_MODEL_LOAD_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    DriverError,
    build_calculator,
    import_engine,
    set_threads,
    verify_weights,
    version,
)

# the shared MD core (constants, statuses, the per-sample health check), shipped next to this one
from md_core import (  # noqa: F401 (re-exported for the torch-sim driver and the tests)
    DEFAULT_COUPLING,
    MIN_DISTANCE_A,
    RUNAWAY_FACTOR,
    STATUSES,
    THERMOSTATS,
    check,
    closest_pair_A,
    inspect_sample,
    replica_record,
)

EXIT_MD_FAILED = 5
REQUIRED_KEYS = (
    'architecture',
    'structure',
    'temperature_K',
    'timestep_fs',
    'equilibration_ps',
    'production_ps',
    'sampling_interval_fs',
    'thermostat',
    'mobile_species',
    'seeds',
)

_CALCULATOR = {}


def read_config(path: Path) -> dict:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exception:
        raise DriverError('bad_config', EXIT_USAGE, f'cannot read {path}: {exception}') from exception
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise DriverError('bad_config', EXIT_USAGE, f'{path} lacks {", ".join(missing)}.')
    if config['architecture'] not in ENGINE_PACKAGES:
        raise DriverError('bad_config', EXIT_USAGE, f'unknown architecture {config["architecture"]!r}.')
    if config['thermostat'] not in THERMOSTATS:
        raise DriverError('bad_config', EXIT_USAGE, f'unknown thermostat {config["thermostat"]!r}.')
    if not config.get('model') and not config.get('pretrained'):
        raise DriverError('bad_config', EXIT_USAGE, f'{path} names neither a model file nor a pretrained model.')
    steps = config['sampling_interval_fs'] / config['timestep_fs']
    if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
        raise DriverError('bad_config', EXIT_USAGE, 'sampling_interval_fs must be a multiple of timestep_fs.')
    return config


def calculator(config: dict):
    """The ASE calculator of this process (built once per worker)."""
    if 'calc' not in _CALCULATOR:
        import_engine(config['architecture'])
        model = Path(config['model']) if config.get('model') else None
        if model is not None and not model.is_file():
            raise DriverError('model_load_failed', EXIT_MODEL_LOAD_FAILED, f'model file {model} does not exist.')
        verify_weights(config.get('weights'), config.get('weights_sha256'))
        try:
            _CALCULATOR['calc'] = build_calculator(
                config['architecture'],
                model,
                config.get('pretrained'),
                config.get('device', 'cpu'),
                config.get('modal'),
            )
        except Exception as exception:
            detail = str(exception).strip().splitlines()[0] if str(exception).strip() else ''
            raise DriverError(
                'model_load_failed',
                EXIT_MODEL_LOAD_FAILED,
                f'{config["architecture"]} could not load {model or config.get("pretrained")} with {sys.executable}: '
                f'{type(exception).__name__}: {detail}',
            ) from exception
        fast = fast_path_problem(config) is None
        if fast and config['architecture'] == 'mace' and len(getattr(_CALCULATOR['calc'], 'models', ())) == 1:
            _CALCULATOR['calc'].calculate = lean_mace_calculate(_CALCULATOR['calc'])
        timer = {'model_s': 0.0, 'calls': 0}
        original = _CALCULATOR['calc'].calculate

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timer['model_s'] += time.perf_counter() - started
                timer['calls'] += 1

        _CALCULATOR['calc'].calculate = timed
        if fast:
            _CALCULATOR['calc'].check_state = exact_state_check(_CALCULATOR['calc'])
        _CALCULATOR['timer'] = timer
    return _CALCULATOR['calc'], _CALCULATOR['timer']


#: The versions the fast path (MD parameter ``fast_path``) was proven against: ASE's Langevin step reproduced bit for
#: bit, MACE's calculator to the last digit (tests/calculations/test_md_ensemble.py). The environments pin exactly
#: these (environments/engines.py; a test fails when a pin moves away from them). Under any other version the driver
#: runs the upstream path and says why in its info (``fast_path``).
FAST_PATH_PROVEN = {'ase': '3.29.0', 'mace-torch': '0.3.16'}


def fast_path_problem(config: dict) -> str | None:
    """Why this run takes the upstream path (ASE's ``run``, state check and calculators), or None for the fast one.

    The fast path is opt-in (``fast_path: true`` in the MD parameters; the protocols set it) and runs only with the
    versions of :data:`FAST_PATH_PROVEN`.
    """
    if not config.get('fast_path'):
        return 'not asked for (fast_path false)'
    needed = ['ase'] + (['mace-torch'] if config['architecture'] == 'mace' else [])
    moved = [
        f'{name} {version(name)} (proven: {FAST_PATH_PROVEN[name]})'
        for name in needed
        if version(name) != FAST_PATH_PROVEN[name]
    ]
    return f'versions differ from the proven ones: {", ".join(moved)}' if moved else None


def exact_state_check(calc):
    """A ``check_state`` for ``calc`` that compares positions, cell, pbc and numbers exactly.

    ASE's compares every per-atom array with ``np.isclose`` at a 1e-15 tolerance: measured 10-15 % of a NequIP step
    on 52 atoms, all of it outside the model call. Exact comparison can only report a change where ASE's would not
    (recomputing, never reusing stale forces); any other difference of the arrays counts as every change. Arrays are
    compared byte for byte (shape, dtype and bytes: 27 → 8 µs per check on 52 atoms against ``np.array_equal``);
    the only values equal as bytes but not by ``==`` are NaNs, at which the cached results are those of the same NaNs.
    """
    from ase.calculators.calculator import all_changes

    def check_state(atoms, tol=1e-15):
        previous = calc.atoms
        if previous is None or previous.arrays.keys() != atoms.arrays.keys():
            return list(all_changes)
        changes = [
            name
            for name, old, new in (
                ('positions', previous.arrays['positions'], atoms.arrays['positions']),
                ('numbers', previous.arrays['numbers'], atoms.arrays['numbers']),
                ('cell', previous.cell.array, atoms.cell.array),
                ('pbc', previous.pbc, atoms.pbc),
            )
            if not identical(old, new)
        ]
        for name in previous.arrays.keys() - {'positions', 'numbers', 'momenta'}:
            if not identical(previous.arrays[name], atoms.arrays[name]):
                changes.append(name)
        return changes

    return check_state


def identical(first, second) -> bool:
    """Whether two numpy arrays have the same shape, dtype and bytes."""
    return first.shape == second.shape and first.dtype == second.dtype and first.tobytes() == second.tobytes()


def lean_mace_calculate(calc):
    """A ``calculate`` for a one-model ``MACECalculator`` that skips its per-call data pipeline where MD allows.

    ``MACECalculator`` rebuilds a torch-geometric graph (config → AtomicData → Batch → clone → dtype casts) and asks
    the model for the stress on every call: measured 55-60 % of a call on the 13-atom demo cell (7.3 ms, of which the
    model 2.9 ms). NVT dynamics changes only the positions, so the graph's other tensors are built once by MACE's own
    pipeline and kept; each call computes the neighbour list with MACE's own ``get_neighborhood`` and runs the model
    for energy and forces only. A request for the stress, or any change besides the positions (``system_changes``,
    from the calculator's state check), goes through the original ``calculate``, which also rebuilds the kept graph.
    """
    import numpy as np
    import torch
    from ase.calculators.calculator import Calculator, all_changes
    from mace.data.neighborhood import get_neighborhood

    original = calc.calculate
    model = calc.models[0]
    dtype = next(model.parameters()).dtype
    kept = {}

    def calculate(atoms=None, properties=('energy',), system_changes=all_changes):
        if 'stress' in (properties or ()) or 'graph' not in kept or set(system_changes) - {'positions'}:
            original(atoms, properties, system_changes)
            kept['graph'] = {
                key: value.to(dtype=dtype) if torch.is_floating_point(value) else value
                for key, value in calc._atoms_to_batch(atoms).to_dict().items()
                if torch.is_tensor(value)
            }
            return
        Calculator.calculate(calc, atoms)
        positions = atoms.positions
        edge_index, shifts, unit_shifts, _ = get_neighborhood(
            positions=positions, cutoff=calc.r_max, pbc=tuple(bool(p) for p in atoms.pbc), cell=atoms.cell.array.copy()
        )
        graph = dict(kept['graph'])
        graph['positions'] = torch.tensor(positions, dtype=dtype)
        graph['edge_index'] = torch.tensor(edge_index, dtype=torch.long)
        graph['shifts'] = torch.tensor(shifts, dtype=dtype)
        graph['unit_shifts'] = torch.tensor(unit_shifts, dtype=dtype)
        out = model(graph, compute_stress=False, training=False)
        energy = float(out['energy'].detach()[0]) * calc.energy_units_to_eV
        forces = out['forces'].detach().cpu().numpy() * (calc.energy_units_to_eV / calc.length_units_to_A)
        calc.results = {'energy': energy, 'free_energy': energy, 'forces': np.asarray(forces, dtype=float)}

    return calculate


def make_dynamics(atoms, config: dict, rng):
    from ase import units

    timestep = config['timestep_fs'] * units.fs
    temperature = config['temperature_K']
    thermostat = config['thermostat']
    coupling = config.get('coupling') or DEFAULT_COUPLING[thermostat]
    if thermostat == 'langevin':
        from ase.constraints import FixCom
        from ase.md.langevin import Langevin

        # ASE >= 3.28 deprecates fixcm=True (not exactly NVT); FixCom removes the centre-of-mass motion instead
        atoms.set_constraint(FixCom())
        return Langevin(atoms, timestep, temperature_K=temperature, friction=coupling / units.fs, fixcm=False, rng=rng)
    if thermostat == 'bussi':
        from ase.md.bussi import Bussi

        return Bussi(atoms, timestep, temperature_K=temperature, taut=coupling * units.fs, rng=rng)
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    return NoseHooverChainNVT(atoms, timestep, temperature_K=temperature, tdamp=coupling * units.fs)


def lean_run(dynamics, fast: bool):
    """``run(n_steps)`` for ``dynamics``: ASE's own ``run``, or on the fast path for Langevin with ``FixCom`` (the
    default thermostat) :func:`langevin_fixcom_step` in a plain loop, the same trajectory bit for bit.

    The other integrators always run through ASE's loop: skipping it (three cached force requests per step through
    ``get_property``) gained 1-2 % of a NequIP step on 52 atoms, under the 5 % a copy of upstream code must earn.
    """
    step = langevin_fixcom_step(dynamics) if fast else None
    if step is None:
        return dynamics.run
    state = {'forces': None}

    def run(n_steps: int) -> None:
        forces = state['forces']
        if forces is None:
            forces = dynamics.atoms.get_forces(md=True)
        for _ in range(n_steps):
            forces = step(forces)
        state['forces'] = forces
        dynamics.nsteps += n_steps

    return run


def langevin_fixcom_step(dynamics):
    """ASE's ``Langevin.step`` with the ``FixCom`` constraint, the same arithmetic without ASE's per-step plumbing.

    None unless ``dynamics`` is ASE's Langevin (``fixcm=False``) on atoms whose only constraint is ``FixCom`` (what
    :func:`make_dynamics` builds) and ASE is the version whose step this copies (:data:`FAST_PATH_PROVEN`).
    ASE's step re-reads the masses four times, copies positions and momenta through
    the ``Atoms`` accessors, recomputes the centre of mass inside the constraint and gets the forces through
    ``get_property`` (state check, a copy of the atoms with a deep copy of the constraint): measured 1.6x the
    numerical work of the step. Here masses and the centre-of-mass weights are read once, the arrays are updated
    in place and the model is called directly (:func:`model_forces`). Every floating-point operation is ASE's
    in ASE's order: the trajectory is ASE's bit for bit (tested).
    """
    import ase
    import numpy as np
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    atoms = dynamics.atoms
    if not (
        ase.__version__ == FAST_PATH_PROVEN['ase']
        and type(dynamics) is Langevin
        and not dynamics.fix_com
        and len(atoms.constraints) == 1
        and type(atoms.constraints[0]) is FixCom
    ):
        return None
    if 'momenta' not in atoms.arrays:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
    masses = dynamics.masses  # (n, 1): the integrator's
    com_masses = atoms.get_masses()  # (n,): FixCom's
    total_mass = com_masses.sum()
    com_weights = com_masses[:, None]
    shape = (len(atoms), 3)
    arrays, rng, dt = atoms.arrays, dynamics.rng, dynamics.dt
    c1, c2, c3, c4, c5 = dynamics.c1, dynamics.c2, dynamics.c3, dynamics.c4, dynamics.c5

    def step(forces):
        positions, momenta = arrays['positions'], arrays['momenta']
        velocities = momenta / com_weights
        xi = rng.standard_normal(size=shape)
        eta = rng.standard_normal(size=shape)
        random_positions = c5 * eta
        random_velocities = c3 * xi - c4 * eta
        velocities += c1 * forces / masses - c2 * velocities + random_velocities
        start = positions.copy()
        new = start + dt * velocities + random_positions
        new += com_masses @ positions / total_mass - com_masses @ new / total_mass  # FixCom.adjust_positions
        positions[:] = new
        velocities = (positions - start - random_positions) / dt
        forces = model_forces(atoms)
        velocities += c1 * forces / masses - c2 * velocities + random_velocities
        new_momenta = velocities * masses
        new_momenta -= com_weights * (new_momenta.sum(axis=0) / total_mass)  # FixCom.adjust_momenta
        momenta[:] = new_momenta
        return forces

    return step


def model_forces(atoms):
    """The forces (eV/Å) of the atoms' calculator after the positions changed, called without ``get_property``.

    What ``get_property`` does on a change of positions, minus its state check and its copy of the atoms (the
    calculators copy them in ``calculate``; where one does not, the copy is made here so that later queries at the
    same positions are served from the cache).
    """
    calc = atoms.calc
    calc.atoms = None
    calc.results = {}
    calc.calculate(atoms, ['energy', 'forces'], ['positions'])
    if calc.atoms is None:
        calc.atoms = atoms.copy()
    return calc.results['forces']


def conserved_energy(dynamics, total_eV: float, thermostat: str) -> float:
    """The thermostat's conserved energy (eV) from the total (potential + kinetic) energy ``total_eV``."""
    if thermostat == 'bussi':
        return total_eV - dynamics.transferred_energy
    if thermostat == 'nose_hoover':
        return dynamics.get_conserved_energy()
    return total_eV


def run_replica(task: tuple[dict, int, int]) -> dict:
    """One replica: equilibrate, then sample the production run. Runs in a worker process (one thread)."""
    config, index, seed = task
    import numpy as np

    set_threads(int(config.get('threads', 1)))
    import ase.io
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    calc, timer = calculator(config)  # loaded once per worker: not part of the replica's time
    started, cpu_started = time.perf_counter(), time.process_time()
    model_before, calls_before = timer['model_s'], timer['calls']
    atoms = ase.io.read(config['structure'], format='extxyz')
    atoms.calc = calc
    symbols = np.array(atoms.get_chemical_symbols())
    mobile = np.flatnonzero(symbols == config['mobile_species'])
    framework = np.flatnonzero(symbols != config['mobile_species'])
    masses = atoms.get_masses()
    weights = masses[framework] / masses[framework].sum() if framework.size else None

    target = float(config['temperature_K'])
    stride = round(config['sampling_interval_fs'] / config['timestep_fs'])
    sample_ps = config['sampling_interval_fs'] / 1000.0
    n_equilibration = round(config['equilibration_ps'] / sample_ps)
    n_frames = round(config['production_ps'] / sample_ps) + 1
    positions = np.full((n_frames, mobile.size, 3), np.nan)
    com = np.full((n_frames, 3), np.nan)
    temperatures, energies = [], []

    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=target, rng=rng)
    Stationary(atoms)
    dynamics = make_dynamics(atoms, config, rng)
    advance = lean_run(dynamics, fast_path_problem(config) is None)
    status, message, done = 'ok', '', 0
    production_started = None
    try:
        status, message, energy, temperature = inspect_sample(atoms, target)
        for _ in range(n_equilibration if status == 'ok' else 0):
            advance(stride)
            status, message, energy, temperature = inspect_sample(atoms, target)
            if status != 'ok':
                message = f'equilibration: {message}'
                break
        com0 = None
        production_started = time.perf_counter()
        for frame in range(n_frames if status == 'ok' else 0):
            if frame:
                advance(stride)
                status, message, energy, temperature = inspect_sample(atoms, target)
                if status != 'ok':
                    message = f'production frame {frame}: {message}'
                    break
            positions[frame] = atoms.positions[mobile]
            if weights is not None:
                centre = weights @ atoms.positions[framework]
                com0 = centre if com0 is None else com0
                com[frame] = centre - com0
            else:
                com[frame] = 0.0
            temperatures.append(temperature)
            total = energy + atoms.get_kinetic_energy()
            energies.append(conserved_energy(dynamics, total, config['thermostat']) / len(atoms))
            done = frame + 1
    except Exception as exception:
        status, message = 'error', f'{type(exception).__name__}: {exception}'
        traceback.print_exc()

    ended = time.perf_counter()
    elapsed = ended - started
    steps = (n_equilibration + max(done - 1, 0)) * stride
    production_steps = max(done - 1, 0) * stride
    production_s = ended - production_started if production_started is not None else 0.0
    return {
        'index': index,
        **replica_record(seed, status, message, positions, com, done, temperatures, energies, sample_ps),
        'wall_s': elapsed,
        'cpu_s': time.process_time() - cpu_started,
        'model_s': timer['model_s'] - model_before,
        'model_calls': timer['calls'] - calls_before,
        'md_steps': steps,
        'atom_steps_per_s': steps * len(atoms) / elapsed if elapsed > 0 else float('nan'),
        'production_steps': production_steps,
        'production_s': production_s,
        'pid': os.getpid(),
        'mobile': mobile,
        'masses': masses,
        'species': symbols,
    }


def _worker_init(threads: int) -> None:
    set_threads(threads)


def run_ensemble(config: dict) -> list[dict]:
    seeds = [int(seed) for seed in config['seeds']]
    tasks = [(config, index, seed) for index, seed in enumerate(seeds)]
    workers = max(1, min(int(config.get('workers', 1)), len(tasks)))
    threads = int(config.get('threads', 1))
    if workers == 1:
        set_threads(threads)
        return [run_replica(task) for task in tasks]
    context = multiprocessing.get_context(config.get('start_method', 'spawn'))
    with context.Pool(processes=workers, initializer=_worker_init, initargs=(threads,), maxtasksperchild=None) as pool:
        return sorted(pool.map(run_replica, tasks, chunksize=1), key=lambda result: result['index'])


def versions(architecture: str) -> dict:
    distribution = ENGINE_PACKAGES[architecture][1]
    return {
        'python': platform.python_version(),
        'numpy': version('numpy'),
        'ase': version('ase'),
        'torch': version('torch'),
        'engine_package': distribution,
        'engine_version': version(distribution),
    }


def write_outputs(results: list[dict], config: dict, output: Path) -> None:
    import numpy as np

    sample_ps = config['sampling_interval_fs'] / 1000.0
    n_frames = results[0]['positions'].shape[0]
    np.savez_compressed(
        output,
        positions_A=np.stack([r['positions'] for r in results]),
        framework_com_A=np.stack([r['com'] for r in results]),
        time_ps=np.arange(n_frames) * sample_ps,
        n_frames_done=np.array([r['n_frames_done'] for r in results], dtype=np.int64),
        temperature_mean_K=np.array([r['temperature_mean_K'] for r in results]),
        temperature_std_K=np.array([r['temperature_std_K'] for r in results]),
        energy_drift_eV_atom_ps=np.array([r['energy_drift_eV_atom_ps'] for r in results]),
        seeds=np.array([r['seed'] for r in results], dtype=np.int64),
        status=np.array([r['status'] for r in results], dtype='<U24'),
        mobile_indices=results[0]['mobile'].astype(np.int64),
        masses=results[0]['masses'],
        species=results[0]['species'].astype('<U3'),
    )


def hardware() -> dict:
    """The machine the run measured: CPU model (``/proc/cpuinfo``), logical cores, architecture, host name."""
    model = ''
    with contextlib.suppress(OSError):
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    return {
        'cpu_model': model or platform.processor(),
        'logical_cores': os.cpu_count(),
        'machine': platform.machine(),
        'node': platform.node(),
    }


def peak_memory() -> dict:
    """Peak resident memory (MB) of this process and of its (finished) worker processes (Linux: ru_maxrss in kB)."""
    return {
        'driver': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        'workers': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
    }


def summarise(info: dict, results: list[dict], started: float) -> None:
    """Complete ``info`` after a successful run: status, per-replica records, atom-steps and timings (s).

    ``replica_cpu_s`` is the sum of the replicas' (wall) times in their processes, ``process_cpu_s`` the CPU time
    those processes used for them (lower than ``replica_cpu_s`` when other jobs compete for the cores),
    ``model_share`` the fraction of ``replica_cpu_s`` spent in the model call (1 − model_share: the driver's overhead
    outside the model), ``atom_steps_per_replica_s`` the atom-steps per process-second and ``atom_steps_per_wall_s``
    per second of the MD's wall time; ``production_atom_steps_per_replica_s`` (ASE engine) the same over the
    production only, after the equilibration warmed the model up (what a cost scaling measures). Shared with the
    torch-sim driver.
    """
    replica_wall = sum(r['wall_s'] for r in results)
    model_time = sum(r['model_s'] for r in results)
    atom_steps = sum(r['md_steps'] for r in results) * len(results[0]['species'])
    statuses = [r['status'] for r in results]
    info.update(
        status='ok',
        message=f'{statuses.count("ok")} of {len(results)} replicas ok',
        replicas=[
            {
                key: r[key]
                for key in ('index', 'seed', 'status', 'message', 'n_frames_done', 'wall_s', 'cpu_s', 'model_s', 'pid')
            }
            for r in results
        ],
        n_atoms=len(results[0]['species']),
        atom_steps=atom_steps,
        peak_rss_MB=peak_memory(),
        hardware=hardware(),
    )
    info['timing'].update(
        replica_cpu_s=replica_wall,
        process_cpu_s=sum(r['cpu_s'] for r in results),
        model_s=model_time,
        model_share=model_time / replica_wall if replica_wall > 0 else None,
        atom_steps_per_replica_s=atom_steps / replica_wall if replica_wall > 0 else None,
        atom_steps_per_wall_s=atom_steps / info['timing']['md_wall_s'] if info['timing']['md_wall_s'] > 0 else None,
        total_s=time.perf_counter() - started,
    )
    production_s = sum(r.get('production_s', 0.0) for r in results)
    if all('production_s' in r for r in results) and production_s > 0:  # warmed up: without the equilibration
        production = sum(r['production_steps'] for r in results) * len(results[0]['species'])
        info['timing']['production_atom_steps_per_replica_s'] = production / production_s


def run_driver(name: str, description: str, describe, load, run, argv: list[str] | None = None, **info) -> int:
    """The command line of an ensemble driver (this one and the torch-sim one), returning the exit code.

    Reads the configuration, adds ``describe(config)`` (a dict) to the info, sets the threads, loads the model once
    with ``load(config)`` (fail early, in the main process), runs ``run(config)`` → per-replica results, then writes
    the npz and the info JSON. A ``DriverError`` anywhere becomes the info's status and the exit code; any other
    exception in the MD becomes ``md_failed``.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--config', type=Path, default=Path('md_ensemble.json'))
    parser.add_argument('--output', type=Path, default=Path('md_ensemble.npz'))
    parser.add_argument('--info', type=Path, default=Path('md_ensemble_info.json'))
    arguments = parser.parse_args(argv)
    started = time.perf_counter()
    info = {'status': 'running', 'message': '', 'executable': sys.executable, 'timing': {}, **info}
    try:
        config = read_config(arguments.config)
        info.update(describe(config))
        set_threads(int(config.get('threads', 1)))
        loading = time.perf_counter()
        load(config)
        info['timing']['load_model_s'] = time.perf_counter() - loading
        md_started = time.perf_counter()
        try:
            results = run(config)
        except DriverError:
            raise
        except Exception as exception:
            traceback.print_exc()
            raise DriverError(
                'md_failed', EXIT_MD_FAILED, f'the ensemble could not run: {type(exception).__name__}: {exception}'
            ) from exception
        info['timing']['md_wall_s'] = time.perf_counter() - md_started
    except DriverError as error:
        info.update(status=error.status, message=error.message)
        info['timing']['total_s'] = time.perf_counter() - started
        arguments.info.write_text(json.dumps(info, indent=2, sort_keys=True))
        print(f'ERROR: {error.message}', file=sys.stderr, flush=True)
        return error.exit_code

    write_outputs(results, config, arguments.output)
    summarise(info, results, started)
    arguments.info.write_text(json.dumps(info, indent=2, sort_keys=True))
    print(f'{name}: {info["message"]} in {info["timing"]["md_wall_s"]:.1f} s', flush=True)
    return EXIT_OK


def describe(config: dict) -> dict:
    """What the info JSON records about the run before it starts."""
    problem = fast_path_problem(config)
    return {
        'architecture': config['architecture'],
        'fast_path': {'asked': bool(config.get('fast_path')), 'used': problem is None, 'reason': problem or ''},
        'workers': int(config.get('workers', 1)),
        'threads_per_worker': int(config.get('threads', 1)),
        'versions': versions(config['architecture']),
    }


def main(argv: list[str] | None = None) -> int:
    return run_driver('md_ensemble', __doc__.split('\n\n')[0], describe, calculator, run_ensemble, argv)


if __name__ == '__main__':
    sys.exit(main())
