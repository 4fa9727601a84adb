"""Shared fixtures: a temporary AiiDA profile (aiida-core's own fixtures) and synthetic trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_mlffdiff.analysis.synthetic import brownian_trajectory

pytest_plugins = ['aiida.tools.pytest_fixtures']

#: A small triclinic cell (Å) and its atoms: 8 Li diffusing, 8 framework atoms.
CELL = np.array([[9.0, 0.0, 0.0], [1.5, 8.5, 0.0], [1.0, 0.8, 9.5]])
SYMBOLS = ['Li'] * 8 + ['P'] * 2 + ['S'] * 6


@pytest.fixture
def make_positions():
    """Wrapped Cartesian positions (Å) of a synthetic run: ``make_positions(seed, d_cm2_s=2e-5, n_frames=150)``."""

    def factory(seed: int, d_cm2_s: float = 2e-5, n_frames: int = 150, frame_interval_ps: float = 0.1):
        return brownian_trajectory(
            CELL, SYMBOLS, {'Li': d_cm2_s}, n_frames=n_frames, frame_interval_ps=frame_interval_ps, seed=seed
        )

    return factory


#: Lennard-Jones parameters of the labelled test configurations: σ (Å), ε (eV), cutoff (Å).
LJ_SIGMA_A, LJ_EPSILON_EV, LJ_CUTOFF_A = 2.5, 0.05, 6.0
#: Lattice templates of the test configurations: name → (fractional sites in a unit, repetitions, species counts).
LJ_TEMPLATES = {
    'sc-2x2x2': ([[0.0, 0.0, 0.0]], (2, 2, 2), {'Li': 4, 'P': 1, 'S': 2, 'Cl': 1}),
    'sc-3x2x2': ([[0.0, 0.0, 0.0]], (3, 2, 2), {'Li': 6, 'P': 1, 'S': 4, 'Cl': 1}),
    'bcc-2x2x2': ([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], (2, 2, 2), {'Li': 8, 'P': 1, 'S': 5, 'Cl': 2}),
}


def lj_configuration(rng: np.random.Generator, template: str):
    """One strained, rattled periodic Li-P-S-Cl cell (8–16 atoms) labelled by Lennard-Jones (eV, eV/Å, eV/Å³)."""
    from ase import Atoms
    from ase.calculators.lj import LennardJones
    from ase.calculators.singlepoint import SinglePointCalculator

    sites, repeat, counts = LJ_TEMPLATES[template]
    nearest = rng.uniform(2.8, 3.0)  # nearest-neighbour distance near the LJ minimum 2^(1/6) σ ≈ 2.81 Å
    unit = nearest if len(sites) == 1 else 2 * nearest / np.sqrt(3)
    grid = np.array([(i, j, k) for i in range(repeat[0]) for j in range(repeat[1]) for k in range(repeat[2])])
    fractional = (grid[:, None, :] + np.array(sites)[None, :, :]).reshape(-1, 3)
    symbols = [symbol for symbol, count in counts.items() for _ in range(count)]
    symbols = [symbols[i] for i in rng.permutation(len(symbols))]
    atoms = Atoms(symbols, positions=fractional * unit, cell=np.diag(repeat) * unit, pbc=True)
    strain = rng.normal(0.0, 0.02, size=(3, 3))
    atoms.set_cell(atoms.cell[:] @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
    atoms.positions += rng.normal(0.0, 0.06, size=atoms.positions.shape)
    distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e3
    assert distances.min() > 1.8, f'overlapping atoms in a test configuration: {distances.min():.2f} Å'
    atoms.calc = LennardJones(sigma=LJ_SIGMA_A, epsilon=LJ_EPSILON_EV, rc=LJ_CUTOFF_A)
    results = {
        'energy': atoms.get_potential_energy(),
        'forces': atoms.get_forces(),
        'stress': atoms.get_stress(voigt=True),
    }
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info['config_type'] = f'lj-{template}'
    return atoms


@pytest.fixture
def lj_configurations():
    """``lj_configurations(n=30, seed=0)``: n periodic Li-P-S-Cl cells (8, 12 or 16 atoms) labelled by LJ.

    Each Atoms has a SinglePointCalculator with energy (eV), forces (eV/Å) and stress (eV/Å³, Voigt-6), and
    ``info['config_type']``. Cells are strained (±2 %) and rattled (0.06 Å); atoms stay > 1.8 Å apart.
    """

    def factory(n: int = 30, seed: int = 0):
        rng = np.random.default_rng(seed)
        names = list(LJ_TEMPLATES)
        return [lj_configuration(rng, names[i % len(names)]) for i in range(n)]

    return factory


@pytest.fixture
def make_training_set(lj_configurations):
    """``make_training_set(n=30, seed=0, functional='lj-test')``: a stored TrainingSet of LJ configurations."""
    from aiida_mlffdiff.data.training_set import TrainingSet

    def factory(n: int = 30, seed: int = 0, functional: str = 'lj-test', engine: str = 'ase-lj'):
        atoms_list = lj_configurations(n=n, seed=seed)
        source = f'Lennard-Jones (σ={LJ_SIGMA_A} Å, ε={LJ_EPSILON_EV} eV, rc={LJ_CUTOFF_A} Å), seed {seed}'
        return TrainingSet.from_atoms(atoms_list, functional=functional, engine=engine, source=source).store()

    return factory


@pytest.fixture(scope='session')
def aiida_profile(aiida_config, aiida_profile_factory):
    """The test profile, with aiida-core's built-in ZeroMQ broker so that ``submit`` and the daemon work.

    Overrides aiida-core's fixture of the same name (which configures no broker); its session fixture
    ``run_aiida_broker_service`` then runs the broker service for the whole session, no external service needed.
    """
    with aiida_profile_factory(aiida_config, broker_backend='core.zeromq') as profile:
        # The daemon's controller answers slowly on a loaded 2-core machine: allow 60 s instead of 2 s.
        aiida_config.set_option('daemon.timeout', 60, scope=profile.name)
        yield profile


@pytest.fixture
def own_computer(aiida_profile):
    """``own_computer(prefix)``: a stored local Computer with a unique label starting with ``prefix``.

    Tests that look codes up by label use one: the session's engine tests register the real codes (and pw.x) on the
    test localhost, which would make "missing code" checks pass or clash with stand-ins.
    """
    import uuid

    from aiida import orm

    def factory(prefix: str):
        return orm.Computer(
            label=f'{prefix}-{uuid.uuid4().hex[:8]}',
            hostname='localhost',
            transport_type='core.local',
            scheduler_type='core.direct',
        ).store()

    return factory


# Engine environments (built once, cached across runs) registered as codes. Tests that run a real engine are
# marked ``engines``; deselect them with ``pytest -m "not engines"``.
@pytest.fixture(scope='session')
def engine_environment():
    """``engine_environment(name)``: the built environment of engine ``name`` (built once if missing, then cached)."""
    from aiida_mlffdiff.environments import ENGINES, EngineEnvironmentError, build_environment

    built = {}

    def factory(name: str):
        if name not in built:
            try:
                built[name] = build_environment(ENGINES[name], log=lambda message: None)
            except EngineEnvironmentError as exception:
                pytest.fail(f'the {name} engine environment cannot be built: {exception}')
        return built[name]

    return factory


@pytest.fixture
def engine_code(engine_environment, aiida_localhost):
    """``engine_code(name, key='python')``: the InstalledCode of an engine executable on the test localhost."""
    from aiida_mlffdiff.environments import register_codes

    def factory(name: str, key: str = 'python'):
        codes = register_codes(engine_environment(name), computer_label=aiida_localhost.label, log=lambda message: None)
        return codes[key]

    return factory


# Tiny models trained once per session, shared by the engine tests (MD ensembles, LAMMPS, torch-sim, workflows).
_SESSION_MODELS: dict[tuple, dict] = {}
#: Attributes that re-create a session model node from its kept file.
_MODEL_ATTRIBUTES = ('architecture', 'species', 'cutoff_A', 'engine', 'engine_version', 'target', 'torch_version')


@pytest.fixture
def session_model(engine_code, make_training_set, tmp_path_factory):
    """``session_model(architecture, overrides=None, compile_environment=None)``: a tiny model, trained once.

    Fast protocol with ``overrides``, on 24 + 6 LJ configurations (seeds 0 and 1). ``compile_environment`` names the
    environment whose ``nequip-compile`` compiles a NequIP model (a .pt2 loads only under the torch that compiled it).
    The model file is kept on disk: tests that reset the storage (``aiida_profile_clean``) delete the node, so it is
    re-created from the file (same sha256) instead of being trained again or loaded by a stale pk.
    """
    import time

    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida.engine import run_get_node

    from aiida_mlffdiff.calculations.train import TrainCalculation
    from aiida_mlffdiff.calculations.writers import get_protocol_parameters
    from aiida_mlffdiff.data.mlff_model import MlffModel

    def factory(architecture: str, overrides: dict | None = None, compile_environment: str | None = None):
        key = (architecture, tuple(sorted((overrides or {}).items())), compile_environment)
        if key not in _SESSION_MODELS:
            started = time.perf_counter()
            inputs = {
                'code': engine_code(architecture, 'dp' if architecture == 'deepmd' else 'train'),
                'architecture': orm.Str(architecture),
                'training_set': make_training_set(n=24, seed=0),
                'validation_set': make_training_set(n=6, seed=1),
                'parameters': orm.Dict(get_protocol_parameters(architecture, 'fast', overrides or {})),
                'seed': orm.Int(1),
                'metadata': {'options': {'max_wallclock_seconds': 900}},
            }
            if compile_environment is not None:
                inputs['compile_code'] = engine_code(compile_environment, 'compile')
            results, node = run_get_node(TrainCalculation, **inputs)
            assert node.is_finished_ok, (node.exit_status, node.exit_message)
            model = results['model']
            path = tmp_path_factory.mktemp(f'session-{architecture}') / model.filename
            path.write_bytes(model.base.repository.get_object_content(model.filename, mode='rb'))
            _SESSION_MODELS[key] = {
                'uuid': model.uuid,
                'path': path,
                'attributes': {name: getattr(model, name) for name in _MODEL_ATTRIBUTES},
                'train_s': time.perf_counter() - started,
            }
        entry = _SESSION_MODELS[key]
        try:
            return orm.load_node(entry['uuid'], sub_classes=(MlffModel,))
        except NotExistent:
            model = MlffModel.get_or_create(entry['path'], **entry['attributes'])
            if not model.is_stored:
                model.store()
            entry['uuid'] = model.uuid
            return model

    return factory


@pytest.fixture
def session_mace_model(session_model):
    """The tiny MACE model of the workflow tests (fast protocol, 20 epochs), trained once per session."""
    return session_model('mace', {'max_epochs': 20})


#: The DeePMD model of the LAMMPS and torch-sim tests: the fast protocol with 600 instead of 100 steps (still too
#: crude for 300 K on the 8-atom cell; fine at 100–200 K), with the type-embedding descriptor the demo uses, so that
#: the MD engines run it (the training test covers se_e2_a).
SESSION_DEEPMD_OVERRIDES = {
    'num_steps': 600,
    'decay_steps': 100,
    'disp_freq': 100,
    'save_freq': 600,
    'descriptor': 'se_atten_v2',
}


@pytest.fixture
def session_deepmd_model(session_model):
    """The tiny DeePMD model shared by the LAMMPS and torch-sim tests, trained once per session."""
    return session_model('deepmd', SESSION_DEEPMD_OVERRIDES)


@pytest.fixture
def lpsc_cell(lj_configurations):
    """The first LJ test configuration (8-atom Li4PS2Cl cell) as a stored StructureData."""
    from aiida import orm

    return orm.StructureData(ase=lj_configurations(n=1, seed=0)[0]).store()
