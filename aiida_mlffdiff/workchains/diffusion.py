"""Diffusion workflow: batches of MD replicas per temperature until D is converged → D(T) and an Arrhenius fit.

``MdEnsembleBaseWorkChain`` wraps :class:`~aiida_mlffdiff.calculations.md_ensemble.MdEnsembleCalculation` in
aiida-core's ``BaseRestartWorkChain``: too many (or all) replicas blowing up is retried with half the timestep
(down to :data:`MIN_TIMESTEP_FS`, the sampling interval kept, so that the MSD time grid does not change), a job
out of walltime with 1.5x the walltime, both a bounded number of times. ``LammpsEnsembleBaseWorkChain`` does the
same for a LAMMPS batch (:class:`~aiida_mlffdiff.workchains.lammps_ensemble.LammpsEnsembleWorkChain`): the same
timestep handler (the walltime of its ``lammps.raw`` jobs is set through its ``options``).

``DiffusionWorkChain`` (``mlffdiff.diffusion``) runs, in rounds, one batch of replicas per unconverged
temperature (all temperatures of a round in parallel), pools every finished batch of a temperature with
``compute_diffusion`` and stops that temperature when the relative standard error of D reaches the target, or
when the replica cap is reached (a warning, not a failure). Batch ``b`` uses the seeds ``seed + 1000 b + i``:
seeds never repeat, and finished batches are kept in the (checkpointed) context, so none is ever recomputed.
Finally ``fit_arrhenius`` extrapolates D and σ to ``extrapolation_temperature`` (with two temperatures or more).
A temperature whose OK replicas ran on average more than :data:`TEMPERATURE_TOLERANCE` away from the target (and
further than three standard errors of their mean) gets a warning: its D belongs to another temperature.

A batch is an ``MdEnsembleBaseWorkChain`` (engines ``ase`` and ``torchsim``), or a
:class:`~aiida_mlffdiff.workchains.lammps_ensemble.LammpsEnsembleWorkChain` when the MD parameters say
``engine: lammps``; both give the same ``msd`` and ``thermo``. The engine is always an MD parameter, an input of
the chain (``get_builder_from_protocol`` writes it, guessing from the code only when none is given). Both kinds
of batch are restarted with a smaller timestep when replicas blow up.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import (
    ProcessHandlerReport,
    ToContext,
    WorkChain,
    append_,
    process_handler,
    while_,
)

from ..analysis import d_unresolved
from ..calculations.md_ensemble import MdEnsembleCalculation, code_engine, md_engine_code
from ..data.mlff_model import MlffModel
from ..functions.arrhenius import arrhenius_line, fit_arrhenius
from ..functions.diffusion import compute_diffusion
from ..functions.diffusion_summary import summarize_diffusion
from ..protocols import ProtocolMixin
from .lammps_ensemble import ENGINE as ENGINE_LAMMPS
from .lammps_ensemble import LammpsEnsembleWorkChain
from .restart import RestartWorkChain

#: Factor applied to the timestep after replicas blew up, and the smallest timestep tried (fs).
TIMESTEP_FACTOR = 0.5
MIN_TIMESTEP_FS = 0.25
#: Seeds of batch ``b``: ``seed + SEED_STRIDE * b + i`` (so a batch holds at most SEED_STRIDE replicas).
SEED_STRIDE = 1000
#: Relative deviation of the replicas' mean temperature from the target above which a temperature gets a warning.
TEMPERATURE_TOLERANCE = 0.05
#: Keys of the MD parameters that the DiffusionWorkChain sets itself.
CHAIN_KEYS = ('temperature_K', 'n_replicas', 'seeds')
PROTOCOLS = ('fast', 'moderate', 'precise')
#: metadata.options passed on to the lammps.raw jobs of a LAMMPS batch.
LAMMPS_OPTIONS = (
    'max_wallclock_seconds',
    'environment_variables',
    'queue_name',
    'account',
    'qos',
    'custom_scheduler_commands',
)


class MdBatchRestartWorkChain(RestartWorkChain):
    """Run one MD batch (``_process_class``, its inputs in the ``_namespace`` namespace) until it succeeds: blown-up
    replicas (exit 330 or 340, the same in the MD CalcJob and the LAMMPS chain) are retried with the timestep times
    ``TIMESTEP_FACTOR`` down to :data:`MIN_TIMESTEP_FS`, the sampling interval kept."""

    _namespace: str = ''

    @classmethod
    def define(cls, spec):
        """Inputs of the batch process in the ``_namespace`` namespace; its outputs are exposed."""
        super().define(spec)
        spec.expose_inputs(cls._process_class, namespace=cls._namespace)
        spec.expose_outputs(cls._process_class)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.exit_code(
            310,
            'ERROR_REPLICAS_KEEP_FAILING',
            message=f'Replicas kept blowing up down to the smallest timestep ({MIN_TIMESTEP_FS} fs).',
        )

    def setup(self):
        """Take the batch's inputs into the context, where the handlers may change them."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(self._process_class, self._namespace))

    @process_handler(
        priority=500,
        exit_codes=[
            MdEnsembleCalculation.exit_codes.ERROR_TOO_MANY_FAILED_REPLICAS,
            MdEnsembleCalculation.exit_codes.ERROR_ALL_REPLICAS_FAILED,
        ],
    )
    def handle_failed_replicas(self, node):
        """Replicas blew up: retry with the timestep times ``TIMESTEP_FACTOR``, keeping the sampling interval."""
        parameters = self.ctx.inputs.parameters.get_dict()
        old = float(parameters.get('timestep_fs', 1.0))
        new = old * TIMESTEP_FACTOR
        if new < MIN_TIMESTEP_FS - 1e-12:
            action = f'timestep {old:g} fs cannot be halved below {MIN_TIMESTEP_FS} fs: giving up'
            self.report_error_handled(node, action)
            return ProcessHandlerReport(do_break=True, exit_code=self.exit_codes.ERROR_REPLICAS_KEEP_FAILING)
        interval = parameters.get('sampling_interval_fs') or 10 * old
        stride = max(1, round(interval / new))
        parameters.update(timestep_fs=new, sampling_interval_fs=stride * new)
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.report_error_handled(
            node, f'restarting with timestep_fs {old:g} → {new:g} (sampling_interval_fs {stride * new:g})'
        )
        return ProcessHandlerReport(do_break=True)


class MdEnsembleBaseWorkChain(MdBatchRestartWorkChain):
    """Run an MdEnsembleCalculation until it succeeds, handling blown-up replicas and walltime."""

    _process_class = MdEnsembleCalculation
    _namespace = 'md'


class LammpsEnsembleBaseWorkChain(MdBatchRestartWorkChain):
    """Run a LAMMPS batch (LammpsEnsembleWorkChain) until it succeeds, halving the timestep when replicas blow up."""

    _process_class = LammpsEnsembleWorkChain
    _namespace = 'lammps'


def runs_lammps(md: dict) -> bool:
    """Whether the MD inputs ask for LAMMPS: their ``engine`` parameter is 'lammps'."""
    parameters = md.get('parameters')
    return parameters is not None and parameters.get_dict().get('engine') == ENGINE_LAMMPS


def namespace_inputs(builder, *excluded: str) -> dict:
    """The inputs set on a sub-builder (what goes into an exposed namespace), without its metadata and ``excluded``:
    how a parent chain (study, benchmark) puts a chain built from its protocol into its own namespace."""
    inputs = builder._inputs(prune=True)
    for key in ('metadata', *excluded):
        inputs.pop(key, None)
    return inputs


def temperature_label(temperature: float) -> str:
    """The output label of a temperature: ``T_600K``, ``T_612p5K``."""
    return 'T_' + f'{temperature:g}'.replace('.', 'p') + 'K'


def check_temperatures(values) -> str | None:
    """None if ``values`` is a non-empty list of distinct positive temperatures (K), else the problem."""
    if not values:
        return 'temperatures must not be empty.'
    if not all(isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) for t in values):
        return f'temperatures must be numbers (K), got {values}.'
    if any(t <= 0 for t in values):
        return f'temperatures must be positive (K), got {values}.'
    if len({temperature_label(float(t)) for t in values}) != len(values):
        return f'temperatures must be distinct, got {values}.'
    return None


def validate_temperatures(value, _=None) -> str | None:
    return check_temperatures(value.get_list()) if value is not None else None


def validate_inputs(value, _=None) -> str | None:
    """Replica counts, target and MD parameters that the chain does not set itself."""
    per_batch, cap = value.get('replicas_per_batch'), value.get('max_replicas')
    if per_batch is not None and not 1 <= per_batch.value <= SEED_STRIDE:
        return f'replicas_per_batch must be in [1, {SEED_STRIDE}], got {per_batch.value}.'
    if per_batch is not None and cap is not None and cap.value < per_batch.value:
        return f'max_replicas ({cap.value}) must be at least replicas_per_batch ({per_batch.value}).'
    target = value.get('target_relative_error')
    if target is not None and not target.value > 0:
        return f'target_relative_error must be positive, got {target.value}.'
    extrapolation = value.get('extrapolation_temperature')
    if extrapolation is not None and not extrapolation.value > 0:
        return f'extrapolation_temperature must be positive (K), got {extrapolation.value}.'
    md = value.get('md', {}).get('md', {})
    parameters = md.get('parameters')
    if parameters is not None:
        clash = sorted(set(parameters.get_dict()) & set(CHAIN_KEYS))
        if clash:
            return f'md.md.parameters must not set {", ".join(clash)}: the DiffusionWorkChain sets them.'
        if 'engine' not in parameters.get_dict():
            return "md.md.parameters must name the MD engine: 'ase', 'torchsim' or 'lammps'."
    return md_inputs_problem(value, md)


def md_inputs_problem(value, md) -> str | None:
    """What the MD CalcJob would refuse, checked here with the chain's model and structure (the exposed namespace
    lacks both, so its own validator cannot): bad or misplaced MD parameters (timestep, mobile species), a
    non-periodic cell, overlapping atoms, species the model lacks, a code of another engine, a model file whose
    sha256 changed, no worker; and diffusion parameters that compute_diffusion would refuse after all the MD ran
    (unknown keys, a fit window beyond the production time)."""
    from ..calculations.md_ensemble import engine_problem, md_parameters, md_problem
    from ..data.mlff_model import ModelChecksumError
    from ..functions.diffusion import DIFFUSION_PARAMETERS
    from ..parameters import validate_parameters

    model, structure, parameters = value.get('model'), value.get('structure'), md.get('parameters')
    temperatures = value.get('temperatures')
    if model is None or structure is None or parameters is None or temperatures is None:
        return None
    if check_temperatures(temperatures.get_list()):
        return None  # the port reports it
    raw = {**parameters.get_dict(), 'temperature_K': min(temperatures.get_list()), 'n_replicas': 1}
    problem, engine = md_problem(model, structure, md.get('supercell'), raw, calcjob=False)
    if problem:
        return problem
    try:
        model.verify_checksum()
    except ModelChecksumError as exception:
        return str(exception)
    code = md.get('code')
    if engine != ENGINE_LAMMPS:
        problem = engine_problem(model, engine, code) if code is not None else None
        if problem:
            return problem
    resources = md.get('metadata', {}).get('options', {}).get('resources', {})
    for key in ('num_mpiprocs_per_machine', 'tot_num_mpiprocs', 'num_machines'):
        if key in resources and not (isinstance(resources[key], int) and resources[key] >= 1):
            return (
                f'md.md.metadata.options.resources.{key} must be a positive integer (workers), got {resources[key]!r}.'
            )
    production_ps = md_parameters(raw, structure.get_ase().get_chemical_symbols(), calcjob=False)['production_ps']
    if 'diffusion_parameters' in value:
        try:
            diffusion = validate_parameters(
                value['diffusion_parameters'].get_dict(), DIFFUSION_PARAMETERS, 'diffusion_parameters'
            )
        except ValueError as exception:
            return str(exception)
        end = diffusion.get('fit_end_ps')
        if end is not None and end > production_ps:
            return (
                f'diffusion_parameters.fit_end_ps {end:g} ps lies beyond the production run ({production_ps:g} ps): '
                'the fit window must end within it.'
            )
    return None


def temperature_warning(label: str, target_K: float, replica_means_K: list[float]) -> str | None:
    """A warning when the OK replicas ran at a mean temperature off the target (K), else None.

    Off means: more than :data:`TEMPERATURE_TOLERANCE` relative deviation and more than three standard errors of
    the mean over replicas (one replica: the tolerance alone). A hot ensemble usually means the integration heats
    faster than the thermostat cools (a rough model or too long a timestep); its D is that of a hotter system.
    """
    means = [t for t in replica_means_K if t is not None and math.isfinite(t)]
    if not means:
        return None
    mean = statistics.fmean(means)
    deviation = mean - target_K
    standard_error = statistics.stdev(means) / math.sqrt(len(means)) if len(means) > 1 else 0.0
    if abs(deviation) <= TEMPERATURE_TOLERANCE * target_K or abs(deviation) <= 3 * standard_error:
        return None
    return (
        f'{label}: the replicas ran at a mean {mean:.0f} K, {100 * deviation / target_K:+.0f} % off the target '
        f'{target_K:g} K (more than {100 * TEMPERATURE_TOLERANCE:g} % and 3 standard errors): D belongs to another '
        'temperature; try a smaller timestep or a stronger thermostat coupling'
    )


def md_rate(batches: list) -> float | None:
    """Mean MD throughput of finished batches: atom-steps per second of one process (the engines' run_info), the
    per-core cost of the model; None when no batch recorded it."""
    rates = [
        node.outputs.run_info.get_dict().get('timing', {}).get('atom_steps_per_replica_s')
        for node in batches
        if 'run_info' in node.outputs
    ]
    rates = [rate for rate in rates if rate]
    return statistics.mean(rates) if rates else None


def nonpositive_warning(label: str, estimate: Mapping) -> str | None:
    """A warning when ``estimate`` (a ``compute_diffusion`` result) has D ≤ 0 (cm²/s), which no Arrhenius fit takes.

    With too little simulated time the slope of the MSD at a low temperature is noise around zero; such a
    temperature is left out of the fit rather than failing the chain (its D ± SE stays in the outputs).
    """
    if estimate['D_cm2_s'] > 0:
        return None
    return (
        f'{label}: D = {estimate["D_cm2_s"]:.3g} ± {estimate["D_err_cm2_s"]:.2g} cm²/s is not positive (no diffusion '
        'resolved in the simulated time): left out of the Arrhenius fit'
    )


class DiffusionWorkChain(ProtocolMixin, WorkChain):
    """D(T) of the mobile species to a target relative error at each temperature, then an Arrhenius fit."""

    _protocol_file = 'diffusion.yaml'

    @classmethod
    def define(cls, spec):
        """Model, structure, temperatures, convergence settings and the MD namespace."""
        super().define(spec)
        spec.input('model', valid_type=MlffModel, help='The model that drives the MD.')
        spec.input('structure', valid_type=orm.StructureData, help='The periodic cell (Å).')
        spec.input('temperatures', valid_type=orm.List, validator=validate_temperatures, help='MD temperatures (K).')
        spec.expose_inputs(
            MdEnsembleBaseWorkChain,
            namespace='md',
            exclude=('md.model', 'md.structure'),
            namespace_options={'help': 'MD inputs; parameters without temperature_K, n_replicas and seeds.'},
        )
        spec.input(
            'target_relative_error',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.01),
            help='Stop a temperature when SE(D)/D is at most this.',
        )
        spec.input('max_replicas', valid_type=orm.Int, default=lambda: orm.Int(96), help='Replica cap per temperature.')
        spec.input('replicas_per_batch', valid_type=orm.Int, default=lambda: orm.Int(16), help='Replicas per MD job.')
        spec.input('diffusion_parameters', valid_type=orm.Dict, required=False, help='Parameters of compute_diffusion.')
        spec.input(
            'extrapolation_temperature',
            valid_type=orm.Float,
            default=lambda: orm.Float(300.0),
            help='Temperature (K) the Arrhenius fit extrapolates D and σ to.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_run_round)(cls.run_round, cls.inspect_round),
            cls.fit,
            cls.results,
        )
        spec.output_namespace('diffusion', valid_type=orm.Dict, dynamic=True, help='D ± SE per temperature.')
        spec.output_namespace('pooled_msd', valid_type=orm.ArrayData, dynamic=True, help='Pooled MSD per T.')
        spec.output('arrhenius', valid_type=orm.Dict, required=False, help='Ea, D0, D and σ at the extrapolation T.')
        spec.output('summary', valid_type=orm.Dict, help='Per temperature: D, SE, relative error, replicas, ...')
        spec.exit_code(401, 'ERROR_NO_FINISHED_BATCH', message='Every MD batch failed at temperature {temperature}.')
        spec.exit_code(402, 'ERROR_ARRHENIUS_FAILED', message='The Arrhenius fit failed: {message}')
        spec.exit_code(403, 'ERROR_DIFFUSION_FAILED', message='compute_diffusion failed at {temperature}: {message}')

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode | None,
        model: MlffModel | None,
        structure: orm.StructureData,
        temperatures,
        protocol: str = 'fast',
        overrides: dict | None = None,
    ):
        """A builder with the settings of ``protocol`` (fast | moderate | precise) from ``protocols/diffusion.yaml``.

        :param code: the python of the engine environment that runs the MD; ``None``: the measured fastest engine for
            the model and cell (:func:`~aiida_mlffdiff.calculations.md_ensemble.md_engine_code`, on ``localhost``).
        :param model: the model (``None``: set later, as the study does; ``code`` is then required).
        :param temperatures: MD temperatures (K).
        :param overrides: replaces protocol values: top-level keys ``target_relative_error``, ``max_replicas``,
            ``replicas_per_batch``, ``extrapolation_temperature``, ``workers``, ``max_wallclock_seconds``,
            ``diffusion_parameters`` (dict), and ``md`` (dict of MD parameters, merged into the protocol's).
        """
        temperatures = [float(t) for t in temperatures] if isinstance(temperatures, list | tuple) else temperatures
        problem = check_temperatures(list(temperatures))
        if problem:
            raise ValueError(problem)
        settings = cls.get_protocol_inputs(protocol)
        overrides = dict(overrides or {})
        md_parameters = {**settings.pop('md'), **overrides.pop('md', {})}
        unknown = set(overrides) - set(settings) - {'diffusion_parameters'}
        if unknown:
            raise ValueError(f'unknown override(s): {", ".join(sorted(unknown))}.')
        settings.update(overrides)
        clash = sorted(set(md_parameters) & set(CHAIN_KEYS))
        if clash:
            raise ValueError(f'md parameters must not set {", ".join(clash)}: the chain sets them.')
        if code is None:
            if model is None:
                raise ValueError('give the MD code, or the model to pick the fastest engine for.')
            md_parameters['engine'], code = md_engine_code(model, len(structure.sites))
        md_parameters.setdefault('engine', code_engine(code))

        builder = cls.get_builder()
        if model is not None:
            builder.model = model
        builder.structure = structure
        builder.temperatures = orm.List(temperatures)
        builder.target_relative_error = orm.Float(settings['target_relative_error'])
        builder.max_replicas = orm.Int(settings['max_replicas'])
        builder.replicas_per_batch = orm.Int(settings['replicas_per_batch'])
        builder.extrapolation_temperature = orm.Float(settings['extrapolation_temperature'])
        if settings.get('diffusion_parameters'):
            builder.diffusion_parameters = orm.Dict(settings['diffusion_parameters'])
        builder.md.md.code = code
        builder.md.md.parameters = orm.Dict(md_parameters)
        cores = code.computer.get_default_mpiprocs_per_machine() if code.computer is not None else None
        workers = min(settings['workers'], settings['replicas_per_batch'], cores or settings['workers'])
        builder.md.md.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': workers}
        builder.md.md.metadata.options.max_wallclock_seconds = settings['max_wallclock_seconds']
        return builder

    def setup(self):
        """One state per temperature: batches submitted, replicas requested, convergence."""
        self.ctx.temperatures = {}
        for temperature in self.inputs.temperatures.get_list():
            label = temperature_label(float(temperature))
            self.ctx.temperatures[label] = {
                'temperature_K': float(temperature),
                'n_batches': 0,
                'n_requested': 0,
                'done': False,
                'converged': False,
                'warnings': [],
                'diffusion': None,
                'pooled_msd': None,
            }
            self.ctx[f'batches_{label}'] = []
        target = self.inputs.target_relative_error.value
        self.report(
            f'{len(self.ctx.temperatures)} temperature(s) {", ".join(self.ctx.temperatures)}: target relative '
            f'error {target:g}, {self.inputs.replicas_per_batch.value} replicas per batch, at most '
            f'{self.inputs.max_replicas.value} per temperature'
        )

    def should_run_round(self) -> bool:
        return any(not state['done'] for state in self.ctx.temperatures.values())

    def run_round(self):
        """Submit one batch of replicas per unfinished temperature, with seeds never used before."""
        md_inputs = self.exposed_inputs(MdEnsembleBaseWorkChain, 'md')
        base = md_inputs['md']['parameters'].get_dict()
        base_seed = int(base.pop('seed', 0))
        per_batch, cap = self.inputs.replicas_per_batch.value, self.inputs.max_replicas.value
        launched = {}
        for label, state in self.ctx.temperatures.items():
            if state['done']:
                continue
            batch = state['n_batches']
            n_replicas = min(per_batch, cap - state['n_requested'])
            first = base_seed + SEED_STRIDE * batch
            parameters = {
                **base,
                'temperature_K': state['temperature_K'],
                'n_replicas': n_replicas,
                'seeds': list(range(first, first + n_replicas)),
            }
            label_link = f'md_{label}_batch{batch}'
            if runs_lammps(md_inputs['md']):
                process = LammpsEnsembleBaseWorkChain
                inputs = {
                    'lammps': self.lammps_inputs(md_inputs['md'], parameters),
                    'metadata': {'call_link_label': label_link},
                }
            else:
                process, inputs = MdEnsembleBaseWorkChain, AttributeDict(md_inputs)
                inputs.md = AttributeDict(md_inputs['md'])
                inputs.md.model = self.inputs.model
                inputs.md.structure = self.inputs.structure
                inputs.md.parameters = orm.Dict(parameters)
                inputs.metadata = {'call_link_label': label_link}
            running = self.submit(process, **inputs)
            state['n_batches'] = batch + 1
            state['n_requested'] += n_replicas
            launched[f'batches_{label}'] = append_(running)
            self.report(
                f'{label}: batch {batch} of {n_replicas} replicas (seeds {first}–{first + n_replicas - 1}): '
                f'launched {process.__name__}<{running.pk}>'
            )
        return ToContext(**launched)

    def lammps_inputs(self, md: dict, parameters: dict) -> dict:
        """Inputs of a LammpsEnsembleWorkChain batch: one lammps.raw job per replica (one process each; walltime,
        environment variables and queue settings of ``md.md.metadata.options`` passed on)."""
        options = dict(md.get('metadata', {}).get('options', {}))
        inputs = {
            'code': md['code'],
            'model': self.inputs.model,
            'structure': self.inputs.structure,
            'parameters': orm.Dict(parameters),  # engine omitted or 'lammps'; anything else is refused there
            'options': {key: options[key] for key in LAMMPS_OPTIONS if key in options},
        }
        if 'supercell' in md:
            inputs['supercell'] = md['supercell']
        return inputs

    def inspect_round(self):
        """Pool all finished batches of each temperature of this round; decide whether it is done."""
        target, cap = self.inputs.target_relative_error.value, self.inputs.max_replicas.value
        for label, state in self.ctx.temperatures.items():
            if state['done']:
                continue
            batches = self.ctx[f'batches_{label}']
            latest = batches[-1]
            if not latest.is_finished_ok:
                self.report(
                    f'{label}: {latest.process_label}<{latest.pk}> failed [{latest.exit_status}]: '
                    f'{latest.exit_message}; its replicas still count against the cap'
                )
            finished = [node for node in batches if node.is_finished_ok and 'msd' in node.outputs]
            if not finished:
                return self.exit_codes.ERROR_NO_FINISHED_BATCH.format(temperature=label)
            state['atom_steps_per_s'] = md_rate(finished)
            msd = {f'batch_{i}': node.outputs.msd for i, node in enumerate(finished)}
            if 'diffusion_parameters' in self.inputs:
                msd['parameters'] = self.inputs.diffusion_parameters
            results, node = compute_diffusion.run_get_node(**msd)
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_DIFFUSION_FAILED.format(temperature=label, message=node.exit_message)
            state['diffusion'] = results['diffusion'].pk
            state['pooled_msd'] = results['pooled_msd'].pk
            result = results['diffusion'].get_dict()
            relative = result.get('relative_error')
            n_replicas = sum(node.outputs.msd.n_replicas for node in finished)
            state['converged'] = relative is not None and math.isfinite(relative) and relative <= target
            reason = d_unresolved(result)
            shown = (
                f'D unresolved ({reason})'
                if reason
                else f'D = {result["D_cm2_s"]:.3e} ± {result["D_err_cm2_s"]:.3e} cm²/s'
            )
            self.report(
                f'{label}: {shown}, relative error {relative if relative is not None else math.inf:.3g} (target '
                f'{target:g}), {n_replicas} replicas in {len(finished)} batch(es), '
                f'{result["simulated_time_ps"]:.3g} ps simulated'
            )
            if state['converged'] or state['n_requested'] >= cap:  # the last round of this temperature
                self.warn_off_target(label, state, finished)
            if state['converged']:
                state['done'] = True
                self.report(f'{label}: converged')
            elif state['n_requested'] >= cap:
                state['done'] = True
                warning = (
                    f'{label}: replica cap of {cap} reached with relative error {relative} above the target {target:g}'
                    ': D is not converged'
                )
                self.report(self._record_warning(label, warning))
        return None

    def warn_off_target(self, label: str, state: dict, finished: list) -> None:
        """Add ``temperature_warning`` of the OK replicas of ``finished`` batches to the warnings and the report."""
        replica_means = [
            replica['temperature_mean_K']
            for node in finished
            for replica in node.outputs.thermo.get_dict()['replicas']
            if replica['status'] == 'ok'
        ]
        warning = temperature_warning(label, state['temperature_K'], replica_means)
        if warning:
            self.report(self._record_warning(label, warning))

    def fit(self):
        """Arrhenius fit over the temperatures with a positive D (it needs two or more).

        A temperature whose D is not positive (no diffusion resolved in the simulated time) is left out with a
        warning instead of sinking the chain; with fewer than two left there is no fit (a warning, exit 0). A
        failing fit is exit 402, raised by ``results`` after the per-temperature outputs are written.
        """
        diffusion = {label: orm.load_node(state['diffusion']) for label, state in self.ctx.temperatures.items()}
        if len(diffusion) < 2:
            self.report('only one temperature: no Arrhenius fit (it needs two or more)')
            return None
        for label in sorted(diffusion):
            warning = nonpositive_warning(label, diffusion[label].get_dict())
            if warning:
                del diffusion[label]
                self.report(self._record_warning(label, warning))
        if len(diffusion) < 2:
            self.report('WARNING no Arrhenius fit: it needs a positive D at two or more temperatures')
            return None
        parameters = orm.Dict({'temperature_K': self.inputs.extrapolation_temperature.value})
        result, node = fit_arrhenius.run_get_node(parameters=parameters, **diffusion)
        if not node.is_finished_ok:
            self.report(f'fit_arrhenius<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')
            self.ctx.arrhenius_error = node.exit_message
            return None
        self.out('arrhenius', result)
        self.report(arrhenius_line(result.get_dict()))
        return None

    def _record_warning(self, label: str, warning: str) -> str:
        """Keep a warning of temperature ``label`` for the summary output; returns the line for the report (which
        the calling step writes, so that ``verdi process report`` names the step)."""
        self.ctx.temperatures[label]['warnings'].append(warning)
        return f'WARNING {warning}'

    def results(self):
        """The per-temperature diffusion Dicts, pooled MSDs and the summary (made by ``summarize_diffusion``)."""
        diffusion, rounds = {}, {}
        for label, state in self.ctx.temperatures.items():
            diffusion[label] = orm.load_node(state['diffusion'])
            rounds[label] = {
                'n_batches': state['n_batches'],
                'warnings': state['warnings'],
                'md_atom_steps_per_s': state.get('atom_steps_per_s'),
            }
            self.out(f'diffusion.{label}', diffusion[label])
            self.out(f'pooled_msd.{label}', orm.load_node(state['pooled_msd']))
        summary, node = summarize_diffusion.run_get_node(
            target_relative_error=self.inputs.target_relative_error, rounds=orm.Dict(rounds), **diffusion
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_DIFFUSION_FAILED.format(temperature='all', message=node.exit_message)
        self.out('summary', summary)
        if self.ctx.get('arrhenius_error'):
            return self.exit_codes.ERROR_ARRHENIUS_FAILED.format(message=self.ctx.arrhenius_error)
        return None
