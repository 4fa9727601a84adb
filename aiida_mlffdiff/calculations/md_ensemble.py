"""``MdEnsembleCalculation``: N independent MD replicas of one MLFF model at one temperature.

The job runs the shipped driver ``md_ensemble.py`` (with ``evaluate_model.py``, whose calculator builder it
imports) with the python of the model's engine environment. The driver spreads the replicas over
``metadata.options.resources['num_mpiprocs_per_machine']`` worker processes (one process per core, one thread
each: the thread variables are exported in the job script). Everything the job needs is written into, or copied
to, its working directory: the drivers, the model file(s), the structure (``structure.extxyz``, the supercell
if one was asked for) and the settings (``md_ensemble.json``).

Engines (parameter ``engine``; checked against the model's architecture and the code's environment at submission):

- ``ase``: every architecture and the pretrained models; driver ``md_ensemble.py``; the replicas are spread over
  ``num_mpiprocs_per_machine`` worker processes, one replica at a time per process; code: the python of the model's
  own environment (``mlffdiff-<mace|nequip|deepmd|pretrained>-python``).
- ``torchsim``: MACE, NequIP and DeePMD models (:data:`TORCHSIM_ARCHITECTURES`); driver
  ``md_ensemble_torchsim.py`` (plus the ASE driver, whose reader and writer it imports): the replicas are split over
  ``num_mpiprocs_per_machine`` worker processes and each process integrates its share as ONE batched torch-sim
  state (one model call per step for all of them); code: the python of ``torchsim-<architecture>`` (Python 3.12).
  NequIP models must be compiled with ``nequip-compile --target batch`` under that environment's torch (train with
  ``compile_target: batch`` and ``compile_code`` = ``mlffdiff-torchsim-nequip-compile``); DeePMD's frozen ``.pth``
  loads as it is.
- ``lammps``: DeePMD through ``pair_style deepmd`` runs as its own work chain, ``LammpsEnsembleWorkChain``
  (``mlffdiff.lammps_ensemble``, one ``lammps.raw`` job per replica); this CalcJob refuses it at submission.

The engine is an explicit parameter, stored with the job's inputs (a query finds which engine produced each MSD);
the code's ``mlffdiff_engine`` extra (mutable, outside the provenance) is only a hint for builders
(:func:`code_engine`), never read to decide what a job runs. :func:`default_engine` (architecture, atoms per
replica) is the measured fastest engine on CPU (docs/md_engines.md), for workflows that pick a code;
:func:`engine_environment` names the environment whose python runs a model with an engine.

Parameters (``parameters`` Dict, checked at submission; units in the names):

- ``temperature_K`` (required, > 0).
- ``timestep_fs`` (default 1.0): > 0 and at most :data:`MAX_TIMESTEP_FS` — 2 fs if the structure contains H
  (its vibrations have periods of ≈ 10 fs), 5 fs otherwise (the lightest usual mobile ion, Li, vibrates with
  periods of ≳ 60 fs in solids).
- ``equilibration_ps`` (default 1.0, ≥ 0), ``production_ps`` (required, > 0).
- ``sampling_interval_fs`` (default 10 × timestep): a positive multiple of the timestep.
- ``thermostat``: ``langevin`` (default), ``bussi`` or ``nose_hoover``; ``coupling`` (default per thermostat:
  Langevin friction 0.001 /fs, i.e. 1 /ps, weak enough not to damp diffusion noticeably; Bussi τ 100 fs;
  Nosé–Hoover damping time 100 fs). See the driver's docstring for why.
- ``mobile_species`` (default ``'Li'``): must be in the structure, and must not be all of it.
- ``mobile_charge`` (default 1.0, non-zero): the charge number of the mobile ion (e), recorded on the MSD for the
  conductivity (2 for Mg²⁺; nothing assumes Li⁺).
- ``n_replicas`` (default 4, ≥ 1); ``seeds`` (list of n_replicas distinct ints) or ``seed`` (base, default 0:
  replica i gets ``seed + i``).
- ``engine`` (required): ``ase`` or ``torchsim``.
- ``max_failed_fraction`` (default 0.5, in [0, 1)): the parser fails the job (``ERROR_TOO_MANY_FAILED_REPLICAS``)
  when a larger fraction of replicas blew up; it still attaches the MSD of the good ones.
- ``fast_path`` (default False; the diffusion protocols set True): engine ``ase`` only. Runs ASE's Langevin step
  with ``FixCom`` as a copy of ASE's arithmetic without its per-step plumbing (bit for bit ASE's trajectory), an
  exact state check instead of ASE's ``np.isclose`` one, and for MACE keeps the graph between calls. Proven
  against, and active only with, the exact versions of ``FAST_PATH_PROVEN`` in the driver, which the environments
  pin; otherwise the job runs the upstream path and its ``run_info`` says why (``fast_path``).
- ``threads_per_worker`` (default 1, ≥ 1): torch/OpenMP/BLAS threads of each worker process (exported in the job
  script and set by the driver); the job uses ``num_mpiprocs_per_machine`` × this many cores. With at least as many
  replicas as cores, one thread per process uses the cores best: a second thread gave one worker 0.86-1.63× its
  throughput (MACE, DeePMD, NequIP at 108 atoms, docs/diagnostics.md), a second worker gives 2×.

Submission errors: bad parameters, mobile species absent, species not covered by the model, a non-periodic
cell, atoms closer than 0.5 Å, an engine that does not run the model's architecture (or a NequIP model compiled
for another target), a code of another engine environment, a corrupted model file.
"""

from __future__ import annotations

import json

from aiida import orm
from aiida.common.datastructures import CalcInfo
from aiida.common.folders import Folder

from ..architectures import ARCHITECTURES
from ..data.mlff_model import MlffModel
from ..data.msd import MsdData
from ..drivers import driver_path
from ..drivers.md_core import DEFAULT_COUPLING, MIN_DISTANCE_A, THERMOSTATS, closest_pair_A
from ..environments.engines import setup_label
from ..parameters import REQUIRED, Option, one_of, positive, validate_parameters
from .driver import DriverCalculation
from .evaluate import ENGINE_EXTRA, model_code_problem

__all__ = (
    'BATCH_PAYS_UP_TO_ATOMS',
    'DEFAULT_ENGINE',
    'MAX_TIMESTEP_FS',
    'MD_ENGINES',
    'PARAMETERS',
    'TORCHSIM_ARCHITECTURES',
    'MdEnsembleCalculation',
    'code_engine',
    'default_engine',
    'engine_environment',
    'engine_problem',
    'md_engine_code',
    'md_parameters',
)

#: MD engines: whether this CalcJob runs them (lammps runs in LammpsEnsembleWorkChain instead).
MD_ENGINES = {'ase': True, 'torchsim': True, 'lammps': False}
#: Architectures the torch-sim engine runs (one environment each: torchsim-mace, torchsim-nequip, torchsim-deepmd).
TORCHSIM_ARCHITECTURES = tuple(name for name, record in ARCHITECTURES.items() if record.torchsim)
#: Fastest engine per architecture on CPU, 1 thread per process, for cells up to :data:`BATCH_PAYS_UP_TO_ATOMS`
#: (the 52-atom Li6PS5Cl cell): batching pays for NequIP and DeePMD, not for MACE (docs/md_engines.md).
DEFAULT_ENGINE = {name: record.default_md_engine for name, record in ARCHITECTURES.items()}
#: Above this many atoms per replica batching no longer pays on CPU for these architectures (DeePMD at 416 atoms:
#: ASE ≈ 4 100–5 600 atom-steps per CPU-second against torch-sim's ≈ 2 100; NequIP: a tie).
BATCH_PAYS_UP_TO_ATOMS = {
    name: r.batch_pays_up_to_atoms for name, r in ARCHITECTURES.items() if r.batch_pays_up_to_atoms
}
#: Driver script per engine (the torch-sim one imports the ASE one; both import the MD core, md_core.py).
DRIVERS = {'ase': 'md_ensemble.py', 'torchsim': 'md_ensemble_torchsim.py'}
#: Largest timestep (fs) accepted: with hydrogen, without.
MAX_TIMESTEP_FS = {'H': 2.0, 'default': 5.0}


def _non_negative(value) -> str | None:
    return None if value >= 0 else 'must not be negative'


def _nonzero(value) -> str | None:
    return None if value != 0 else 'must not be zero'


def _at_least_one(value) -> str | None:
    return None if value >= 1 else 'must be at least 1'


def _failed_fraction(value) -> str | None:
    return None if 0 <= value < 1 else 'must be in [0, 1)'


def _seeds(value) -> str | None:
    if not all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 for seed in value):
        return 'must be non-negative integers'
    return None if len(set(value)) == len(value) else 'must be distinct'


PARAMETERS = {
    'temperature_K': Option(float, REQUIRED, 'target temperature, K', positive),
    'timestep_fs': Option(float, 1.0, 'MD timestep, fs (≤ 2 fs with H, ≤ 5 fs otherwise)', positive),
    'equilibration_ps': Option(float, 1.0, 'equilibration before sampling, ps', _non_negative),
    'production_ps': Option(float, REQUIRED, 'sampled production run, ps', positive),
    'sampling_interval_fs': Option((float, type(None)), None, 'time between frames, fs (default 10 timesteps)'),
    'thermostat': Option(str, 'langevin', 'langevin, bussi or nose_hoover', one_of(*THERMOSTATS)),
    'coupling': Option(
        (float, type(None)), None, 'Langevin friction 1/fs (0.001) or Bussi/Nosé–Hoover time fs (100)', positive
    ),
    'mobile_species': Option(str, 'Li', 'element whose MSD is recorded'),
    'mobile_charge': Option(float, 1.0, 'charge number of the mobile ion (e), for σ', _nonzero),
    'n_replicas': Option(int, 4, 'independent replicas', _at_least_one),
    'seeds': Option((list, type(None)), None, 'one seed per replica (else seed + i)', _seeds),
    'seed': Option(int, 0, 'base seed: replica i gets seed + i', _non_negative),
    'engine': Option(str, REQUIRED, 'MD engine: ase or torchsim'),
    'max_failed_fraction': Option(float, 0.5, 'largest tolerated fraction of failed replicas', _failed_fraction),
    'fast_path': Option(bool, False, 'ase engine: the pinned fast path (same trajectories, less overhead)'),
    'threads_per_worker': Option(int, 1, 'torch/OpenMP threads of each worker process', _at_least_one),
}


def md_parameters(raw, symbols, *, calcjob: bool = True) -> dict:
    """The parameters completed with defaults (coupling, sampling interval, seeds), or ValueError.

    :param calcjob: whether the engine must be one this CalcJob runs (False for the LAMMPS chain's parameters).
    """
    parameters = validate_parameters(raw, PARAMETERS, 'md_ensemble parameters')
    problems = []
    engine = parameters['engine']
    if engine not in MD_ENGINES:
        problems.append(f'engine {engine!r} is unknown (known: {", ".join(MD_ENGINES)})')
    elif calcjob and not MD_ENGINES[engine]:
        ready = ', '.join(name for name, runs in MD_ENGINES.items() if runs)
        problems.append(
            f'engine {engine!r} does not run in this CalcJob (it runs: {ready}); use LammpsEnsembleWorkChain '
            '(mlffdiff.lammps_ensemble) for lammps'
        )
    if engine == 'lammps' and parameters['threads_per_worker'] != 1:
        problems.append('threads_per_worker applies to the ase and torchsim engines (LAMMPS runs one thread per job)')
    limit = MAX_TIMESTEP_FS['H'] if 'H' in symbols else MAX_TIMESTEP_FS['default']
    timestep = parameters['timestep_fs']
    if timestep > limit:
        problems.append(
            f'timestep_fs {timestep:g} exceeds {limit:g} fs (the limit {"with" if limit == 2 else "without"} H)'
        )
    if parameters['sampling_interval_fs'] is None:
        parameters['sampling_interval_fs'] = 10 * timestep
    stride = parameters['sampling_interval_fs'] / timestep
    if stride < 1 - 1e-9 or abs(stride - round(stride)) > 1e-6:
        problems.append(f'sampling_interval_fs {parameters["sampling_interval_fs"]:g} is not a multiple of timestep_fs')
    elif parameters['production_ps'] * 1000 / parameters['sampling_interval_fs'] < 2 - 1e-9:
        problems.append('production_ps must span at least two sampling intervals')
    if parameters['coupling'] is None:
        parameters['coupling'] = DEFAULT_COUPLING[parameters['thermostat']]
    seeds = parameters['seeds']
    if seeds is None:
        parameters['seeds'] = [parameters['seed'] + i for i in range(parameters['n_replicas'])]
    elif len(seeds) != parameters['n_replicas']:
        problems.append(f'seeds has {len(seeds)} entries for n_replicas {parameters["n_replicas"]}')
    mobile = parameters['mobile_species']
    if mobile not in symbols:
        problems.append(f'mobile_species {mobile} is not in the structure ({", ".join(sorted(set(symbols)))})')
    elif set(symbols) == {mobile}:
        problems.append(f'the structure holds only {mobile}: there is no framework')
    if problems:
        raise ValueError('invalid md_ensemble parameters: ' + '; '.join(problems) + '.')
    return parameters


def default_engine(architecture: str, n_atoms: int) -> str:
    """The measured fastest MD engine on CPU for ``architecture`` with ``n_atoms`` atoms per replica."""
    engine = DEFAULT_ENGINE.get(architecture, 'ase')
    if engine == 'torchsim' and n_atoms > BATCH_PAYS_UP_TO_ATOMS.get(architecture, 0):
        return 'ase'
    return engine


def md_engine_code(model: MlffModel, n_atoms: int, computer: str = 'localhost') -> tuple[str, orm.AbstractCode]:
    """``(engine, code)`` that run ``model`` fastest here, with ``n_atoms`` atoms per replica.

    The measured default of :func:`default_engine`, falling back to ``ase`` when that engine's code is not
    registered on ``computer`` or cannot run this model (a NequIP model compiled for the ``ase`` target). Codes are
    looked up as ``aiida-mlffdiff setup`` registers them: ``mlffdiff-<environment>-python@<computer>``.

    :raises ValueError: not even the model's own environment has a registered python on ``computer``.
    """
    from aiida.common.exceptions import NotExistent

    engine = default_engine(model.architecture, n_atoms)
    if engine == 'torchsim':
        try:
            code = orm.load_code(setup_label(engine_environment(model, engine), 'python', computer))
        except NotExistent:
            code = None
        if code is not None and engine_problem(model, engine, code) is None:
            return engine, code
    environment = engine_environment(model, 'ase')
    label = setup_label(environment, 'python', computer)
    try:
        return 'ase', orm.load_code(label)
    except NotExistent as exception:
        raise ValueError(
            f'no MD code for {model.describe()}: {label} is not registered; run `aiida-mlffdiff setup --engines '
            f'{environment} --computer {computer}`.'
        ) from exception


def code_environment(code) -> str | None:
    """The engine environment a code runs (its ``mlffdiff_engine`` extra, set by ``register_codes``), or None."""
    return code.base.extras.get(ENGINE_EXTRA, None) if code is not None else None


def code_engine(code) -> str:
    """A builder's guess of the MD engine a code runs, from its ``mlffdiff_engine`` extra (a hint, not provenance):
    ``lammps`` for a LAMMPS build (or a ``lammps.raw`` code), ``torchsim`` for a ``torchsim-*`` python, else ``ase``.
    Builders write the result into the MD parameters, where the job reads it."""
    environment = code_environment(code) or ''
    if environment == 'lammps' or (code is not None and code.default_calc_job_plugin == 'lammps.raw'):
        return 'lammps'
    return 'torchsim' if environment.startswith('torchsim-') else 'ase'


def engine_environment(model: MlffModel, engine: str) -> str:
    """The engine environment whose python runs ``model`` with ``engine`` (e.g. ``torchsim-nequip``)."""
    return f'torchsim-{model.architecture}' if engine == 'torchsim' else model.engine


def engine_problem(model: MlffModel, engine: str, code) -> str | None:
    """Why ``model`` cannot run with MD ``engine`` and ``code``, or None (checked at submission)."""
    if engine == 'ase':
        environment = code_environment(code)
        if environment and environment.startswith('torchsim-'):
            return (
                f'code {code.full_label} runs the {environment!r} environment (torch-sim): set engine to '
                "'torchsim', or give the python of the model's own environment for engine 'ase'."
            )
        return model_code_problem(model, code)
    if engine != 'torchsim':
        return f'engine {engine!r} cannot run models here.'
    if model.pretrained or model.architecture not in TORCHSIM_ARCHITECTURES:
        what = f'pretrained {model.model_name}' if model.pretrained else model.architecture
        return (
            f"engine 'torchsim' does not run {what} models (it runs {', '.join(TORCHSIM_ARCHITECTURES)}); use "
            "engine 'ase'."
        )
    if model.architecture == 'nequip' and model.target != 'batch':
        return (
            f'{model.describe()} was compiled for the {model.target!r} target; torch-sim needs a model compiled with '
            '`nequip-compile --target batch` under the torch of the torchsim-nequip environment (train with '
            "compile_target 'batch' and compile_code mlffdiff-torchsim-nequip-compile)."
        )
    environment = code_environment(code)
    needed = engine_environment(model, engine)
    if environment and environment != needed:
        return f"code {code.full_label} runs the {environment!r} environment: engine 'torchsim' needs {needed!r}."
    try:
        model.verify_checksum()
    except ValueError as exception:
        return str(exception)
    return None


def build_atoms(structure: orm.StructureData, supercell: orm.List | None):
    """The ASE atoms of the MD cell: the structure, repeated by ``supercell`` if given."""
    atoms = structure.get_ase()
    if supercell is not None:
        atoms = atoms.repeat(tuple(supercell.get_list()))
    return atoms


def validate_supercell(value, _=None) -> str | None:
    if value is None:
        return None
    repeat = value.get_list()
    if len(repeat) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in repeat):
        return f'supercell must be three integers ≥ 1, got {repeat}.'
    return None


def md_problem(
    model: MlffModel,
    structure: orm.StructureData,
    supercell: orm.List | None,
    raw: dict | None,
    *,
    calcjob: bool = True,
) -> tuple[str | None, str | None]:
    """``(problem, engine)`` of MD inputs: a non-periodic cell, bad parameters, species the model lacks, atoms
    closer than :data:`MIN_DISTANCE_A`; ``problem`` is None when they are fine (``engine`` then is the parameter)."""
    if not all(structure.pbc):
        return f'the structure must be periodic in all three directions, got pbc {structure.pbc}.', None
    atoms = build_atoms(structure, supercell)
    symbols = atoms.get_chemical_symbols()
    try:
        engine = md_parameters(raw, symbols, calcjob=calcjob)['engine']
    except ValueError as exception:
        return str(exception), None
    try:
        model.check_species(set(symbols))
    except ValueError as exception:
        return f'the model cannot run this structure: {exception}', None
    closest = closest_pair_A(atoms.positions, atoms.cell.array)  # the check every MD engine runs per sample
    if closest is not None:
        return f'atoms overlap in the MD cell: two are {closest:.3f} Å apart (< {MIN_DISTANCE_A} Å).', None
    return None, engine


def validate_inputs(value, _=None) -> str | None:
    """Submission-time checks of the parameters, the structure, the model and the code."""
    model, structure, code = value.get('model'), value.get('structure'), value.get('code')
    if model is None or structure is None:
        return None
    if validate_supercell(value.get('supercell')):
        return None  # the port reports it
    parameters = value.get('parameters')
    raw = parameters.get_dict() if parameters is not None else None
    problem, engine = md_problem(model, structure, value.get('supercell'), raw)
    return problem or engine_problem(model, engine, code)


class MdEnsembleCalculation(DriverCalculation):
    """Independent MD replicas of one model at one temperature (ASE or torch-sim); MSD of the mobile species."""

    _DRIVER = 'md_ensemble.py'
    _SHARED_DRIVER = 'evaluate_model.py'
    _CORE = 'md_core.py'
    _STRUCTURE = 'structure.extxyz'
    _CONFIG = _INPUT = 'md_ensemble.json'
    _OUTPUT = 'md_ensemble.npz'
    _INFO = 'md_ensemble_info.json'
    _STDOUT = 'md_ensemble.out'
    _STDERR = 'md_ensemble.err'
    _PARSER = 'mlffdiff.md_ensemble'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('model', valid_type=MlffModel, help='The model that drives the MD.')
        spec.input('structure', valid_type=orm.StructureData, help='The periodic cell (Å).')
        spec.input(
            'supercell',
            valid_type=orm.List,
            required=False,
            validator=validate_supercell,
            help='Repetitions [n1, n2, n3] of the structure along its cell vectors.',
        )
        spec.input('parameters', valid_type=orm.Dict, help='MD settings; see the module docstring (units in keys).')
        spec.inputs.validator = validate_inputs

        spec.output('msd', valid_type=MsdData, required=False, help='Tracer and collective MSD of the OK replicas.')
        spec.output('thermo', valid_type=orm.Dict, help='Per-replica status, mean/std T (K), energy drift.')
        spec.output('run_info', valid_type=orm.Dict, required=False, help='Versions, workers and timings (s).')
        spec.default_output_node = 'thermo'

        # 300 and 310 (job and environment failures, never cache sources): DriverCalculation. Replicas that blew up
        # (330, 340) are a deterministic result of the inputs (seeds included) and stay cacheable.
        spec.exit_code(320, 'ERROR_MD_FAILED', invalidates_cache=True, message='The MD could not run: {message}')
        spec.exit_code(330, 'ERROR_ALL_REPLICAS_FAILED', message='Every replica failed: {message}')
        spec.exit_code(
            340,
            'ERROR_TOO_MANY_FAILED_REPLICAS',
            message='More replicas failed than max_failed_fraction allows (MSD of the OK ones attached): {message}',
        )

    @property
    def workers(self) -> int:
        resources = self.inputs.metadata.options.resources
        return int(resources.get('num_mpiprocs_per_machine') or resources.get('tot_num_mpiprocs') or 1)

    @property
    def engine(self) -> str:
        """The MD engine of this job (``ase`` or ``torchsim``): its ``engine`` parameter."""
        return self.inputs.parameters.get_dict()['engine']

    def environment_name(self) -> str:
        """The environment whose python runs the model with this job's engine (e.g. ``torchsim-nequip``)."""
        return engine_environment(self.inputs.model, self.engine)

    def driver_config(self, atoms) -> dict:
        model = self.inputs.model
        parameters = md_parameters(self.inputs.parameters.get_dict(), atoms.get_chemical_symbols())
        return {
            'architecture': model.architecture,
            'model': None if model.pretrained else model.filename,
            'pretrained': (model.package_model or model.model_name) if model.pretrained else None,
            'modal': model.modal if model.pretrained else None,
            'weights': model.package_file if model.pretrained else None,
            'weights_sha256': model.sha256 if model.pretrained else None,
            'structure': self._STRUCTURE,
            'workers': self.workers,
            'threads': parameters['threads_per_worker'],
            **{
                key: parameters[key]
                for key in PARAMETERS
                if key not in ('seed', 'max_failed_fraction', 'threads_per_worker')
            },
            'engine': self.engine,
        }

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the drivers, the structure and the settings; copy the model file(s) from the repository."""
        folder.insert_path(str(driver_path('md_ensemble')), self._DRIVER)
        folder.insert_path(str(driver_path('evaluate_model')), self._SHARED_DRIVER)
        folder.insert_path(str(driver_path('md_core')), self._CORE)
        if self.engine == 'torchsim':
            folder.insert_path(str(driver_path('md_ensemble_torchsim')), DRIVERS['torchsim'])
        atoms = build_atoms(self.inputs.structure, self.inputs.get('supercell'))
        with folder.open(self._STRUCTURE, 'w') as handle:
            atoms.write(handle, format='extxyz')
        with folder.open(self._CONFIG, 'w') as handle:
            json.dump(self.driver_config(atoms), handle, indent=2, sort_keys=True)

        cmdline = [DRIVERS[self.engine], '--config', self._CONFIG, '--output', self._OUTPUT, '--info', self._INFO]
        threads = int(self.inputs.parameters.get_dict().get('threads_per_worker', 1))
        return self.driver_calcinfo(cmdline, self.model_copy_list(), threads=threads)
