"""Reference DFT data: one single point per configuration (QE or VASP) → ``collect_training_set`` → TrainingSet.

``ReferenceDataWorkChain`` (``mlffdiff.reference``) takes a namespace of configurations (e.g. the outputs of
``sample_configurations``), a functional ('pbe' | 'hse06'), an engine ('qe' | 'vasp', see
:mod:`aiida_mlffdiff.dft`), a code and the engine's resolved settings (``dft_settings``: what
``get_builder_from_protocol`` read from the engine's protocol, merged with the overrides, on the client; the chain
reads no protocol file). Everything is validated at submission (engine, functional, settings, periodic cells,
overlapping atoms, elements missing from the pseudopotential family, zero configurations, a code of the wrong
plugin). At most ``max_concurrent`` DFT sub-workchains run at once, in a
sliding window: the chain waits for the oldest running one, then files every finished one and fills the window
again (waves that waited for their slowest member left cores idle between waves). Failed configurations are
reported by pk and listed in the ``summary`` output; more than ``max_failed_fraction`` of them failed is exit
code 401. The same configuration namespace given twice with 'pbe' and 'hse06' gives two
TrainingSets that differ only by the functional.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, while_

from ..data.training_set import TrainingSet
from ..dft import DftEngineError, get_dft_engine
from ..functions.collect import collect_training_set
from ..protocols import ProtocolMixin

__all__ = ('ReferenceDataWorkChain', 'reference_summary')

#: Optional inputs that carry engine-specific arguments, by the type of node that holds them.
ENGINE_INPUT_TYPES = {'pseudo_family': orm.Str, 'potential_family': orm.Str, 'potential_mapping': orm.Dict}


@calcfunction
def reference_summary(summary: orm.Dict) -> orm.Dict:
    """The summary of a ReferenceDataWorkChain (counts, failed configurations with pk and exit status) as output."""
    return orm.Dict(summary.get_dict())


def engine_kwargs_from_inputs(engine, inputs: Mapping) -> dict[str, Any]:
    """The engine-specific keyword arguments (``ENGINE_INPUTS``) found in ``inputs``, as plain Python values."""
    kwargs = {}
    for name in engine.ENGINE_INPUTS:
        if name in inputs and inputs[name] is not None:
            node = inputs[name]
            kwargs[name] = node.get_dict() if isinstance(node, orm.Dict) else node.value
    return kwargs


def fraction_problem(name: str, value: float) -> str | None:
    """The message for a failure tolerance outside [0, 1], or None."""
    return None if 0.0 <= value <= 1.0 else f'{name} must be in [0, 1], got {value}.'


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Namespace validator: everything that can be checked before any DFT runs."""
    if 'engine' not in inputs or 'functional' not in inputs:
        return None
    try:
        engine = get_dft_engine(inputs['engine'].value)
    except DftEngineError as exception:
        return str(exception)
    name = inputs['engine'].value.strip().lower()
    foreign = sorted(key for key in ENGINE_INPUT_TYPES if key in inputs and key not in engine.ENGINE_INPUTS)
    if foreign:
        return f'{", ".join(foreign)} is not an input of engine {name!r} (it takes {", ".join(engine.ENGINE_INPUTS)}).'
    configurations = inputs.get('configurations') or {}
    if not configurations:
        return 'no configuration given: the configurations namespace is empty.'
    reserved = sorted({'engine', 'functional'} & set(configurations))
    if reserved:
        return f'configuration names {reserved} are reserved: rename them.'
    code = inputs.get('code')
    if code is None:
        return f'no code given: pass the {engine.CALCJOB_PLUGIN} code (see `aiida-mlffdiff setup`).'
    plugin = code.default_calc_job_plugin
    if plugin is not None and plugin != engine.CALCJOB_PLUGIN:
        return f'code {code.full_label} is for {plugin}, engine {name!r} needs a {engine.CALCJOB_PLUGIN} code.'
    if inputs['max_concurrent'].value < 1:
        return f'max_concurrent must be at least 1, got {inputs["max_concurrent"].value}.'
    problem = fraction_problem('max_failed_fraction', inputs['max_failed_fraction'].value)
    if problem:
        return problem
    functional = inputs['functional'].value
    kwargs = engine_kwargs_from_inputs(engine, inputs)
    for key in sorted(configurations):
        problem = engine.validate(configurations[key], functional, None, **kwargs)
        if problem:
            return f'configuration {key!r}: {problem}'
    # Dry run of the builder on the first configuration: checks the settings and options too.
    first = configurations[sorted(configurations)[0]]
    options = inputs['options'].get_dict() if 'options' in inputs else None
    try:
        engine.build(code, first, functional, inputs['dft_settings'].get_dict(), options, **kwargs)
    except (ValueError, TypeError, KeyError) as exception:
        return f'the {name} inputs cannot be built: {exception}'
    return None


class ReferenceDataWorkChain(ProtocolMixin, WorkChain):
    """DFT single points (energy, forces, stress) of a set of configurations, collected into one TrainingSet."""

    _protocol_file = 'reference.yaml'

    @classmethod
    def define(cls, spec):
        """Inputs: configurations, functional, engine, code, protocol, engine extras, concurrency and tolerance."""
        super().define(spec)
        spec.input_namespace(
            'configurations',
            valid_type=orm.StructureData,
            dynamic=True,
            help='The configurations to label (e.g. the outputs of sample_configurations), by name.',
        )
        spec.input('functional', valid_type=orm.Str, help="Exchange-correlation functional: 'pbe' or 'hse06'.")
        spec.input('engine', valid_type=orm.Str, default=lambda: orm.Str('qe'), help="DFT engine: 'qe' or 'vasp'.")
        spec.input('code', valid_type=orm.AbstractCode, required=False, help='pw.x (qe) or vasp code.')
        spec.input(
            'dft_settings',
            valid_type=orm.Dict,
            help="The engine's resolved settings of every single point (``get_settings`` of the engine: cutoffs, "
            'k-point spacing, SCF threshold, namelists or INCAR), as get_builder_from_protocol resolved them.',
        )
        spec.input('pseudo_family', valid_type=orm.Str, required=False, help='qe: aiida-pseudo family label.')
        spec.input('potential_family', valid_type=orm.Str, required=False, help='vasp: POTCAR family label.')
        spec.input('potential_mapping', valid_type=orm.Dict, required=False, help='vasp: element → POTCAR symbol.')
        spec.input(
            'max_concurrent',
            valid_type=orm.Int,
            default=lambda: orm.Int(4),
            help='At most this many DFT calculations run at once (a sliding window).',
        )
        spec.input(
            'max_failed_fraction',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.1),
            help='Largest tolerated fraction of failed configurations; above it the chain fails (exit 401).',
        )
        spec.input('options', valid_type=orm.Dict, required=False, help='metadata.options of each DFT CalcJob.')
        spec.input(
            'level',
            valid_type=orm.Str,
            required=False,
            help="Name of the reference-quality level of dft_settings (e.g. 'gamma', 'converged'): recorded on the "
            'training set (reference_level).',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.should_continue)(cls.fill_window, cls.file_finished),
            cls.collect,
        )
        spec.output('training_set', valid_type=TrainingSet, help='Energy (eV), forces (eV/Å), stress (eV/Å³).')
        spec.output(
            'summary',
            valid_type=orm.Dict,
            help='n_configurations, n_succeeded, n_failed and failed: {name: {pk, exit_status, exit_message}}.',
        )
        spec.exit_code(
            401,
            'ERROR_TOO_MANY_FAILED',
            message='More than max_failed_fraction of the configurations failed (their pks are in the report and '
            'the summary output).',
        )
        spec.exit_code(402, 'ERROR_COLLECTION_FAILED', message='collect_training_set failed on the DFT outputs.')

    @classmethod
    def get_builder_from_protocol(
        cls,
        code: orm.AbstractCode,
        configurations: Mapping[str, orm.StructureData] | Sequence[orm.StructureData],
        functional: str,
        engine: str = 'qe',
        protocol: str = 'moderate',
        overrides: dict | None = None,
        options: dict | None = None,
        *,
        dft_protocol: str | None = None,
        **engine_kwargs: Any,
    ):
        """A builder with the concurrency and failure tolerance of ``protocol`` (``protocols/reference.yaml``) and
        the engine's settings of ``dft_protocol`` (default: ``protocol``) with ``overrides``, resolved here.

        :param configurations: StructureData by name, or a sequence (named ``c0000``, ``c0001``...).
        :param engine_kwargs: qe: ``pseudo_family`` (str); vasp: ``potential_family`` (str), ``potential_mapping``
            (dict); also ``max_concurrent`` (int) and ``max_failed_fraction`` (float) replace the protocol's.
        :raises ValueError: an unknown protocol, engine, functional or override.
        """
        settings = cls.get_protocol_inputs(protocol)
        for key in ('max_concurrent', 'max_failed_fraction'):
            if key in engine_kwargs:
                settings[key] = engine_kwargs.pop(key)
        dft_engine = get_dft_engine(engine)
        dft_settings = dft_engine.get_settings(functional, dft_protocol or protocol, overrides)
        if not isinstance(configurations, Mapping):
            configurations = {f'c{i:04d}': structure for i, structure in enumerate(configurations)}
        builder = cls.get_builder()
        builder.code = code
        builder.configurations = dict(configurations)
        builder.functional = orm.Str(functional)
        builder.engine = orm.Str(engine)
        builder.dft_settings = orm.Dict(dft_settings)
        builder.max_concurrent = orm.Int(int(settings['max_concurrent']))
        builder.max_failed_fraction = orm.Float(float(settings['max_failed_fraction']))
        if options:
            builder.options = orm.Dict(options)
        for key, value in engine_kwargs.items():
            if key not in ENGINE_INPUT_TYPES:
                raise ValueError(f'unknown engine argument {key!r}; known: {", ".join(ENGINE_INPUT_TYPES)}.')
            builder[key] = ENGINE_INPUT_TYPES[key](value)
        builder.metadata.description = f'{engine} {functional} single points, protocol {dft_protocol or protocol}'
        return builder

    def setup(self):
        """Queue the configurations (sorted by name) and load the engine."""
        self.ctx.pending = sorted(self.inputs.configurations)
        self.ctx.running = []  # [name, pk] in submission order
        self.ctx.succeeded = {}
        self.ctx.failed = {}
        engine = self.inputs.engine.value.strip().lower()
        self.report(
            f'{len(self.ctx.pending)} configurations, engine {engine}, functional {self.inputs.functional.value}, '
            f'at most {self.inputs.max_concurrent.value} at once'
        )

    def _engine(self):
        return get_dft_engine(self.inputs.engine.value)

    def should_continue(self) -> bool:
        """Whether configurations remain to be submitted or to be waited for."""
        return bool(self.ctx.pending or self.ctx.running)

    def fill_window(self):
        """Submit DFT sub-workchains until ``max_concurrent`` run, then wait for the oldest running one."""
        engine = self._engine()
        kwargs = engine_kwargs_from_inputs(engine, self.inputs)
        settings = self.inputs.dft_settings.get_dict()
        options = self.inputs.options.get_dict() if 'options' in self.inputs else None
        submitted = []
        while self.ctx.pending and len(self.ctx.running) < self.inputs.max_concurrent.value:
            name = self.ctx.pending.pop(0)
            builder = engine.build(
                self.inputs.code,
                self.inputs.configurations[name],
                self.inputs.functional.value,
                settings,
                options,
                **kwargs,
            )
            builder.metadata.call_link_label = f'dft_{name}'
            node = self.submit(builder)
            self.ctx.running.append([name, node.pk])
            submitted.append(f'{name}<{node.pk}>')
        if submitted:
            queued = len(self.ctx.pending)
            self.report(f'submitted {len(submitted)} single points ({queued} queued): {", ".join(submitted)}')
        return ToContext(oldest=orm.load_node(self.ctx.running[0][1]))

    def file_finished(self):
        """Sort every finished sub-workchain into succeeded or failed (reported by pk); the others keep running."""
        still_running = []
        for name, pk in self.ctx.running:
            node = orm.load_node(pk)
            if not node.is_terminated:
                still_running.append([name, pk])
            elif node.is_finished_ok:
                self.ctx.succeeded[name] = pk
            else:
                self.ctx.failed[name] = {
                    'pk': pk,
                    'exit_status': node.exit_status,
                    'exit_message': node.exit_message or node.process_state.value,
                }
                self.report(
                    f'configuration {name}: {node.process_label}<{pk}> failed [{node.exit_status}]: {node.exit_message}'
                )
        self.ctx.running = still_running

    def collect(self):
        """Check the failure fraction, then collect the labels of the succeeded configurations into a TrainingSet."""
        total = len(self.inputs.configurations)
        failed = self.ctx.failed
        summary = {
            'engine': self.inputs.engine.value.strip().lower(),
            'functional': self.inputs.functional.value,
            'n_configurations': total,
            'n_succeeded': len(self.ctx.succeeded),
            'n_failed': len(failed),
            'max_failed_fraction': self.inputs.max_failed_fraction.value,
            'failed': failed,
        }
        self.out('summary', reference_summary(orm.Dict(summary)))
        fraction = len(failed) / total
        if failed:
            listing = ', '.join(f'{name} (pk {info["pk"]})' for name, info in sorted(failed.items()))
            self.report(f'{len(failed)} of {total} configurations failed ({fraction:.0%}): {listing}')
        if not self.ctx.succeeded or fraction > self.inputs.max_failed_fraction.value:
            self.report(
                f'failed fraction {fraction:.0%} exceeds max_failed_fraction '
                f'{self.inputs.max_failed_fraction.value:.0%}: no training set'
            )
            return self.exit_codes.ERROR_TOO_MANY_FAILED

        engine = self._engine()
        configurations = {}
        for name, pk in sorted(self.ctx.succeeded.items()):
            node = orm.load_node(pk)
            configurations[name] = {
                'structure': self.inputs.configurations[name],
                **{port: node.outputs[port] for port in engine.OUTPUT_PORTS},
            }
        level = {'level': self.inputs.level} if 'level' in self.inputs else {}
        outputs, node = collect_training_set.run_get_node(
            engine=self.inputs.engine, functional=self.inputs.functional, **level, **configurations
        )
        if not node.is_finished_ok:
            self.report(f'collect_training_set<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')
            return self.exit_codes.ERROR_COLLECTION_FAILED
        training_set = outputs if isinstance(outputs, TrainingSet) else outputs['result']
        self.out('training_set', training_set)
        self.report(
            f'TrainingSet<{training_set.pk}>: {training_set.n_structures} configurations, '
            f'{training_set.n_atoms_total} atoms, functional {training_set.functional}'
        )
        return None
