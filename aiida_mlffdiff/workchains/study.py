"""``MlffDiffusionStudyWorkChain``: functionals × architectures × temperatures in one provenance-tracked submission.

One shared set of sampled configurations → reference data per functional (``ReferenceDataWorkChain``) → one
``TrainingWorkChain`` per (functional, architecture) → one ``DiffusionWorkChain`` per model (plus optional
zero-shot rows for pretrained universal models, which skip reference and training) → ``compare_study``. Branches
of a stage run concurrently; a failed branch is reported and left out, the others finish.

Everything is resolved on the client: ``get_builder_from_protocol`` reads the study protocol and the protocols of
the sub-chains and fills one exposed namespace per stage and branch with what will run (``reference.<functional>``:
the DFT settings; ``training.<architecture>``: every hyper-parameter and code; ``diffusion.<architecture>``: the MD
parameters, engine included, code and resources). The study stores those values as its inputs (``verdi process
show`` lists them); its steps only add what earlier steps made (configurations, training sets, models).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.common.exceptions import NotExistent
from aiida.engine import ToContext, WorkChain, if_

from ..architectures import ARCHITECTURES
from ..architectures import TRAINABLE as TRAINABLE_NAMES
from ..calculations.evaluate import PRETRAINED_MODELS, pretrained_model
from ..calculations.md_ensemble import default_engine
from ..data.mlff_model import MlffModel
from ..dft import DftEngineError, get_dft_engine
from ..environments.engines import setup_label
from ..functions.comparison import compare_study
from ..functions.sampling import sample_configurations, sampling_parameters
from ..protocols import ProtocolMixin
from .diffusion import DiffusionWorkChain, check_temperatures
from .reference import ReferenceDataWorkChain, engine_kwargs_from_inputs, fraction_problem
from .training import TrainingWorkChain

__all__ = ('FUNCTIONALS', 'TRAINABLE', 'MlffDiffusionStudyWorkChain', 'code_keys', 'default_codes', 'study_md_engine')

#: Functionals a study can label with (one ``reference.<functional>`` namespace each).
FUNCTIONALS = ('pbe', 'hse06')
#: Architectures the study trains, and the executables each needs by role (``<engine>_<executable>`` in ``codes``).
TRAINABLE: dict[str, dict[str, str]] = {name: dict(ARCHITECTURES[name].executables) for name in TRAINABLE_NAMES}
#: Architectures of the pretrained models (one ``diffusion.<architecture>`` namespace each, as for trained ones).
PRETRAINED_ARCHITECTURES = tuple(sorted({entry['architecture'] for entry in PRETRAINED_MODELS.values()}))
#: Group every study's results are added to (plus one group per study: ``mlffdiff/study/<pk>``).
STUDIES_GROUP = 'mlffdiff/studies'


def code_keys(architectures: Sequence[str], pretrained: Sequence[str]) -> list[str]:
    """Keys of the ``codes`` argument a study needs, e.g. ``mace_train``, ``mace_python``, ``pretrained_python``."""
    keys = [f'{arch}_{key}' for arch in architectures for key in TRAINABLE[arch].values()]
    if pretrained:
        keys.append('pretrained_python')
    return keys


def default_codes(keys: Sequence[str], computer: str = 'localhost') -> dict[str, orm.AbstractCode]:
    """The codes ``aiida-mlffdiff setup`` registered (``mlffdiff-<engine>-<key>@computer``) for ``keys``.

    :raises ValueError: a code is missing; the message says which command registers it.
    """
    codes, missing = {}, []
    for key in keys:
        engine, executable = key.split('_', 1)
        try:
            codes[key] = orm.load_code(setup_label(engine, executable, computer))
        except NotExistent:
            missing.append(setup_label(engine, executable, computer))
    if missing:
        engines = sorted({label.split('-')[1] for label in missing})
        raise ValueError(
            f'missing code(s) {", ".join(missing)}: run `aiida-mlffdiff setup --engines {",".join(engines)} '
            f'--computer {computer}` (or register them yourself, see docs/codes.md).'
        )
    return codes


def study_md_engine(
    architecture: str, n_atoms: int, given: orm.AbstractCode, training: Mapping[str, Any] | None = None
) -> tuple[str, orm.AbstractCode]:
    """``(engine, code)`` of a row's MD, chosen on the client: the measured fastest engine on CPU for the
    architecture and cell (:data:`~aiida_mlffdiff.calculations.md_ensemble.DEFAULT_ENGINE`) when its code is
    registered on ``given``'s computer (``mlffdiff-torchsim-<architecture>-python``) and the model will be able to
    run it (NequIP: trained with ``compile_target: batch``); otherwise ``ase`` with ``given``, the python of the
    model's own environment."""
    engine = default_engine(architecture, n_atoms)
    model_runs_it = architecture != 'nequip' or (training or {}).get('compile_target') == 'batch'
    if engine == 'torchsim' and model_runs_it:
        try:
            return engine, orm.load_code(setup_label(f'torchsim-{architecture}', 'python', given.computer.label))
        except NotExistent:
            pass
    return 'ase', given


def _names(value) -> list[str]:
    return [str(item).strip().lower() for item in (value.get_list() if isinstance(value, orm.List) else value)]


def _given(inputs, namespace: str) -> list[str]:
    """The names of the sub-namespaces of ``namespace`` that hold inputs."""
    return sorted(name for name, value in (inputs.get(namespace) or {}).items() if value)


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Everything a study can check before it starts: rows, temperatures, sampling, structure vs DFT and MD."""
    functionals, architectures = _given(inputs, 'reference'), _given(inputs, 'training')
    pretrained = inputs.get('pretrained') or {}
    if not architectures and not pretrained:
        return 'no architecture and no pretrained model: the study would have no row.'
    if architectures and not functionals:
        return 'architectures need reference data: give at least one functional (pbe, hse06).'
    if functionals and not architectures:
        return f'reference data for {", ".join(functionals)} but no architecture to train on it.'
    for key, model in pretrained.items():
        if not model.pretrained or model.architecture != key:
            return f'pretrained.{key} must be a pretrained {key} model, got {model.describe()}.'
    missing = sorted((set(architectures) | set(pretrained)) - set(_given(inputs, 'diffusion')))
    if missing:
        return f'no diffusion inputs for {", ".join(missing)}: give diffusion.<architecture> for every row.'
    unused = sorted(set(_given(inputs, 'diffusion')) - set(architectures) - set(pretrained))
    if unused:
        return f'diffusion inputs for {", ".join(unused)}, which no row uses.'
    problem = check_temperatures(list(inputs['temperatures'].get_list()))
    if problem:
        return problem
    if functionals:
        if 'sampling' not in inputs:
            return 'reference data need configurations: give the sampling parameters (sampling).'
        try:
            sampling_parameters(inputs['sampling'].get_dict())
        except ValueError as exception:
            return str(exception)
    structure = inputs['structure']
    md_structure = inputs.get('md_structure', structure)
    for name in sorted(set(architectures) | set(pretrained)):
        parameters = inputs['diffusion'][name]['md']['md']['parameters'].get_dict()
        mobile = parameters.get('mobile_species', 'Li')
        for label, cell in (('structure', structure), ('md_structure', md_structure)):
            symbols = sorted(set(cell.get_ase().get_chemical_symbols()))
            if mobile not in symbols:
                return f'the {label} has no {mobile} (its elements: {", ".join(symbols)}): nothing would diffuse.'
    for functional in functionals:
        reference = inputs['reference'][functional]
        problem = fraction_problem('reference.max_failed_fraction', reference['max_failed_fraction'].value)
        if problem:
            return f'{functional}: {problem}'
        try:
            engine = get_dft_engine(reference['engine'].value)
        except DftEngineError as exception:
            return str(exception)
        if 'code' not in reference:
            return f'no dft code: the {reference["engine"].value} engine needs its code (e.g. pw.x for qe).'
        kwargs = engine_kwargs_from_inputs(engine, reference)
        problem = engine.validate(structure, functional, None, **kwargs)
        if problem:
            return f'{functional}: {problem}'
        options = reference['options'].get_dict() if 'options' in reference else None
        try:
            engine.build(
                reference['code'], structure, functional, reference['dft_settings'].get_dict(), options, **kwargs
            )
        except (ValueError, TypeError, KeyError) as exception:
            return f'{functional}: the DFT inputs cannot be built: {exception}'
    return None


def row_label(functional: str, architecture: str) -> str:
    """Label of one row of the comparison (and of the calls of its branch): ``pbe_mace``, ``pretrained_chgnet``."""
    return f'{functional}_{architecture}'.replace('-', '_').replace('.', '_')


def failure(node: orm.ProcessNode) -> str:
    """``<Process><pk> failed [<exit status>]: <message>``."""
    return f'{node.process_label}<{node.pk}> failed [{node.exit_status}]: {node.exit_message}'


def _namespace_inputs(builder, *excluded: str) -> dict:
    """The inputs set on a sub-builder (what goes into an exposed namespace), without its metadata and ``excluded``."""
    inputs = builder._inputs(prune=True)
    for key in ('metadata', *excluded):
        inputs.pop(key, None)
    return inputs


class MlffDiffusionStudyWorkChain(ProtocolMixin, WorkChain):
    """The seed study: DFT reference data per functional, one model per (functional, architecture), D(T) per model."""

    _protocol_file = 'study.yaml'

    @classmethod
    def define(cls, spec):
        """Inputs (structure, temperatures, sampling and one resolved namespace per branch); outputs."""
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='Cell the configurations are sampled from (Å).')
        spec.input(
            'md_structure', valid_type=orm.StructureData, required=False, help='Cell of the MD (default: structure).'
        )
        spec.input('temperatures', valid_type=orm.List, help='MD temperatures (K).')
        spec.input(
            'sampling',
            valid_type=orm.Dict,
            required=False,
            help='Parameters of sample_configurations (with functionals).',
        )
        for functional in FUNCTIONALS:
            spec.expose_inputs(
                ReferenceDataWorkChain,
                namespace=f'reference.{functional}',
                exclude=('configurations', 'functional'),
                namespace_options={
                    'required': False,
                    'populate_defaults': False,
                    'help': f'Reference data with {functional}: engine, code, resolved DFT settings, concurrency.',
                },
            )
        for architecture in TRAINABLE:
            spec.expose_inputs(
                TrainingWorkChain,
                namespace=f'training.{architecture}',
                exclude=('training_set',),
                namespace_options={
                    'required': False,
                    'populate_defaults': False,
                    'help': f"Training of {architecture} on each functional's set: split, hyper-parameters, codes.",
                },
            )
        for architecture in (*TRAINABLE, *PRETRAINED_ARCHITECTURES):
            spec.expose_inputs(
                DiffusionWorkChain,
                namespace=f'diffusion.{architecture}',
                exclude=('model', 'structure', 'temperatures'),
                namespace_options={
                    'required': False,
                    'populate_defaults': False,
                    'help': f'D(T) of every {architecture} model: MD parameters (engine included), code, targets.',
                },
            )
        spec.input_namespace(
            'pretrained',
            valid_type=MlffModel,
            dynamic=True,
            required=False,
            help='Zero-shot rows: pretrained universal models by architecture (chgnet, sevenn); no reference data, no '
            'training.',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            if_(cls.needs_reference)(cls.sample, cls.run_reference, cls.inspect_reference),
            cls.run_training,
            cls.inspect_training,
            cls.run_diffusion,
            cls.inspect_diffusion,
            cls.results,
        )
        spec.output_namespace('configurations', valid_type=orm.StructureData, dynamic=True)
        spec.output_namespace(
            'training_sets', valid_type=orm.Data, dynamic=True, help='One TrainingSet per functional.'
        )
        spec.output_namespace('models', valid_type=orm.Data, dynamic=True, help='One MlffModel per row.')
        spec.output_namespace('test_metrics', valid_type=orm.Dict, dynamic=True, help='Test-set errors per row.')
        spec.output_namespace(
            'diffusion', valid_type=orm.Dict, dynamic=True, help='DiffusionWorkChain summary per row.'
        )
        spec.output_namespace('arrhenius', valid_type=orm.Dict, dynamic=True, help='Arrhenius fit per row.')
        spec.output('comparison', valid_type=orm.Dict, help='The comparison table (rows: functional × architecture).')
        spec.exit_code(401, 'ERROR_SOME_BRANCHES_FAILED', message='Some branches failed: {failed}.')
        spec.exit_code(402, 'ERROR_ALL_BRANCHES_FAILED', message='Every branch failed: {failed}.')
        spec.exit_code(403, 'ERROR_SAMPLING_FAILED', message='sample_configurations failed: {message}')
        spec.exit_code(404, 'ERROR_COMPARISON_FAILED', message='compare_study failed: {message}')

    @classmethod
    def get_builder_from_protocol(
        cls,
        structure: orm.StructureData,
        functionals: Sequence[str],
        architectures: Sequence[str],
        temperatures: Sequence[float],
        *,
        protocol: str | None = None,
        dft_code: orm.AbstractCode | None = None,
        dft_engine: str = 'qe',
        pretrained: Sequence[str] = (),
        md_structure: orm.StructureData | None = None,
        codes: Mapping[str, orm.AbstractCode] | None = None,
        computer: str = 'localhost',
        mobile_species: str = 'Li',
        seed: int = 0,
        dft_options: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        **engine_kwargs: Any,
    ):
        """A builder with every sub-chain resolved from ``protocol`` (fast | moderate | precise, ``study.yaml``).

        The study protocol names the protocols of the stages and their overrides; each is resolved here, with the
        sub-chain's own ``get_builder_from_protocol``, into the namespaces ``reference.<functional>``,
        ``training.<architecture>`` and ``diffusion.<architecture>``, where they can be inspected and changed
        before submission.

        :param temperatures: MD temperatures (K).
        :param codes: engine codes by ``<engine>_<key>`` (:func:`code_keys`); missing ones are loaded as
            ``mlffdiff-<engine>-<key>@computer`` (registered by ``aiida-mlffdiff setup``).
        :param mobile_species: the diffusing element (written into the MD parameters).
        :param seed: seed of the splits and the training.
        :param dft_options: ``metadata.options`` of the DFT CalcJobs.
        :param overrides: replaces top-level protocol values (``sampling``, ``dft_protocol``, ``training_protocol``,
            ``training_overrides``, ``diffusion_protocol``, ``diffusion_overrides``, ``reference_protocol``,
            ``reference_max_failed_fraction``, ``dft_overrides``).
        :param engine_kwargs: ``pseudo_family`` (qe) or ``potential_family`` / ``potential_mapping`` (vasp).
        :raises ValueError: unknown protocol, name or override, a missing code.
        """
        settings = cls.get_protocol_inputs(protocol)
        unknown = sorted(set(overrides or {}) - set(settings))
        if unknown:
            raise ValueError(f'unknown override(s) {", ".join(unknown)}; known: {", ".join(sorted(settings))}.')
        settings.update(overrides or {})
        functionals, architectures = _names(functionals), _names(architectures)
        for name, values in (
            ('functionals', functionals),
            ('architectures', architectures),
            ('pretrained', pretrained),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f'{name} lists a value twice: {list(values)}.')
        unknown = sorted(set(functionals) - set(FUNCTIONALS))
        if unknown:
            raise ValueError(f'unknown functional(s) {", ".join(map(repr, unknown))}; known: {", ".join(FUNCTIONALS)}.')
        unknown = sorted(set(architectures) - set(TRAINABLE))
        if unknown:
            raise ValueError(f'unknown architecture(s) {", ".join(unknown)}; known: {", ".join(TRAINABLE)}.')
        unknown = sorted(set(pretrained) - set(PRETRAINED_MODELS))
        if unknown:
            raise ValueError(
                f'unknown pretrained model(s) {", ".join(unknown)}; known: {", ".join(PRETRAINED_MODELS)}.'
            )
        problem = check_temperatures([float(t) for t in temperatures])
        if problem:
            raise ValueError(problem)
        wanted = code_keys(architectures, list(pretrained))
        codes = dict(codes or {})
        codes.update(default_codes([key for key in wanted if key not in codes], computer))

        builder = cls.get_builder()
        builder.structure = structure
        if md_structure is not None:
            builder.md_structure = md_structure
        md_cell = md_structure if md_structure is not None else structure
        builder.temperatures = orm.List([float(t) for t in temperatures])
        if functionals:
            builder.sampling = orm.Dict(settings['sampling'])
        reference_kwargs = dict(engine_kwargs)
        if settings.get('reference_max_failed_fraction') is not None:
            reference_kwargs['max_failed_fraction'] = settings['reference_max_failed_fraction']
        for functional in functionals:
            sub = ReferenceDataWorkChain.get_builder_from_protocol(
                dft_code,
                {},
                functional,
                engine=dft_engine,
                protocol=settings['reference_protocol'],
                dft_protocol=settings['dft_protocol'],
                overrides=settings.get('dft_overrides') or None,
                options=dict(dft_options) if dft_options else None,
                **reference_kwargs,
            )
            builder.reference[functional] = _namespace_inputs(sub, 'configurations', 'functional')

        training_overrides = settings.get('training_overrides') or {}
        training_parameters = {}
        for architecture in architectures:
            keys = TRAINABLE[architecture]
            sub = TrainingWorkChain.get_builder_from_protocol(
                codes[f'{architecture}_{keys["train"]}'],
                codes[f'{architecture}_python'],
                None,
                architecture,
                protocol=settings['training_protocol'],
                compile_code=codes.get(f'{architecture}_compile'),
                overrides=training_overrides.get(architecture),
                seed=seed,
            )
            training_parameters[architecture] = sub.train.train.parameters.get_dict()
            builder.training[architecture] = _namespace_inputs(sub, 'training_set')

        diffusion_overrides = dict(settings.get('diffusion_overrides') or {})
        md = {**diffusion_overrides.pop('md', {}), 'mobile_species': mobile_species}
        rows = {architecture: codes[f'{architecture}_python'] for architecture in architectures}
        models = {}
        for name in pretrained:
            model = pretrained_model(name)
            models[model.architecture] = model
            rows[model.architecture] = codes['pretrained_python']
        for architecture, python in rows.items():
            md_parameters = dict(md)
            if 'engine' in md_parameters:
                code = python
            else:
                n_atoms = len(md_cell.sites)
                md_parameters['engine'], code = study_md_engine(
                    architecture, n_atoms, python, training_parameters.get(architecture)
                )
            sub = DiffusionWorkChain.get_builder_from_protocol(
                code,
                None,
                md_cell,
                [float(t) for t in temperatures],
                protocol=settings['diffusion_protocol'],
                overrides={**diffusion_overrides, 'md': md_parameters},
            )
            builder.diffusion[architecture] = _namespace_inputs(sub, 'model', 'structure', 'temperatures')
        if models:
            builder.pretrained = models
        return builder

    def _launch(self, builder, call_label: str, what: str) -> dict:
        """Submit ``builder`` with the CALL link label ``call_label`` (how report and plot find it); report it."""
        builder.metadata.call_link_label = call_label
        running = self.submit(builder)
        self.report(f'{what}: launched {running.process_label}<{running.pk}>')
        return {call_label: running}

    # ------------------------------------------------------------------------------------------------ stages
    def setup(self):
        """Remember the rows and where failures go."""
        self.ctx.functionals = [name for name in FUNCTIONALS if name in _given(self.inputs, 'reference')]
        self.ctx.architectures = [name for name in TRAINABLE if name in _given(self.inputs, 'training')]
        self.ctx.pretrained = sorted(self.inputs.get('pretrained') or {})
        self.ctx.failed = {}
        self.ctx.training_sets = {}
        self.ctx.models = {}
        self.report(
            f'study: functionals {self.ctx.functionals or "-"} × architectures {self.ctx.architectures or "-"}'
            + (f' + pretrained {self.ctx.pretrained}' if self.ctx.pretrained else '')
            + f' at {self.inputs.temperatures.get_list()} K'
        )

    def needs_reference(self) -> bool:
        return bool(self.ctx.functionals and self.ctx.architectures)

    def sample(self):
        """One shared set of configurations for every functional (the functional is the only difference)."""
        outputs, node = sample_configurations.run_get_node(
            structure=self.inputs.structure, parameters=self.inputs.sampling
        )
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_SAMPLING_FAILED.format(message=node.exit_message)
        self.ctx.configurations = dict(outputs['configurations'])
        self.out('configurations', self.ctx.configurations)
        self.report(f'sampled {len(self.ctx.configurations)} configurations: sample_configurations<{node.pk}>')
        return None

    def _launch(self, process, inputs: dict, call_label: str, what: str) -> dict:
        """Submit ``process`` with the CALL link label ``call_label`` (how report and plot find it); report it."""
        inputs['metadata'] = {'call_link_label': call_label}
        running = self.submit(process, **inputs)
        self.report(f'{what}: launched {running.process_label}<{running.pk}>')
        return {call_label: running}

    def run_reference(self):
        """One ReferenceDataWorkChain per functional (its ``reference.<functional>`` inputs), concurrently."""
        launched = {}
        for functional in self.ctx.functionals:
            inputs = AttributeDict(self.exposed_inputs(ReferenceDataWorkChain, namespace=f'reference.{functional}'))
            inputs.configurations = self.ctx.configurations
            inputs.functional = orm.Str(functional)
            launched.update(self._launch(ReferenceDataWorkChain, inputs, f'reference_{functional}', functional))
        return ToContext(**launched)

    def inspect_reference(self):
        """Keep the training sets that were made; their architectures' rows fail otherwise."""
        for functional in self.ctx.functionals:
            node = self.ctx[f'reference_{functional}']
            if node.is_finished_ok:
                self.ctx.training_sets[functional] = node.outputs.training_set.pk
                self.out(f'training_sets.{functional}', node.outputs.training_set)
                continue
            reason = failure(node)
            self.report(f'{functional}: {reason}; its rows are skipped')
            for architecture in self.ctx.architectures:
                self.ctx.failed[row_label(functional, architecture)] = reason

    def run_training(self):
        """One TrainingWorkChain per (functional, architecture) with a training set, concurrently."""
        launched = {}
        for functional, training_set in self.ctx.training_sets.items():
            for architecture in self.ctx.architectures:
                inputs = AttributeDict(self.exposed_inputs(TrainingWorkChain, namespace=f'training.{architecture}'))
                inputs.training_set = orm.load_node(training_set)
                label = row_label(functional, architecture)
                launched.update(self._launch(TrainingWorkChain, inputs, f'training_{label}', label))
        return ToContext(**launched)

    def inspect_training(self):
        """Keep the models that were trained, with their test-set errors; add the pretrained ones."""
        for functional in self.ctx.training_sets:
            for architecture in self.ctx.architectures:
                label = row_label(functional, architecture)
                node = self.ctx[f'training_{label}']
                if not node.is_finished_ok:
                    reason = failure(node)
                    self.report(f'{label}: {reason}; the row is skipped')
                    self.ctx.failed[label] = reason
                    continue
                self.ctx.models[label] = node.outputs.model.pk
                self.out(f'models.{label}', node.outputs.model)
                self.out(f'test_metrics.{label}', node.outputs.test_metrics)
        for architecture in self.ctx.pretrained:
            model = self.inputs.pretrained[architecture]
            label = row_label('pretrained', architecture)
            self.ctx.models[label] = model.pk
            self.out(f'models.{label}', model)

    def run_diffusion(self):
        """One DiffusionWorkChain per model (the ``diffusion.<architecture>`` inputs of its architecture)."""
        structure = self.inputs.get('md_structure', self.inputs.structure)
        launched = {}
        for label, pk in self.ctx.models.items():
            model = orm.load_node(pk)
            inputs = AttributeDict(self.exposed_inputs(DiffusionWorkChain, namespace=f'diffusion.{model.architecture}'))
            inputs.model = model
            inputs.structure = structure
            inputs.temperatures = self.inputs.temperatures
            engine = inputs.md['md']['parameters'].get_dict()['engine']
            what = f'{label} ({model.describe()}, engine {engine})'
            launched.update(self._launch(DiffusionWorkChain, inputs, f'diffusion_{label}', what))
        return ToContext(**launched)

    def inspect_diffusion(self):
        """Keep the finished diffusion results."""
        self.ctx.finished = []
        for label in self.ctx.models:
            node = self.ctx[f'diffusion_{label}']
            if not node.is_finished_ok:
                reason = failure(node)
                self.report(f'{label}: {reason}')
                self.ctx.failed[label] = reason
                continue
            self.ctx.finished.append(label)
            self.out(f'diffusion.{label}', node.outputs.summary)
            if 'arrhenius' in node.outputs:
                self.out(f'arrhenius.{label}', node.outputs.arrhenius)

    def results(self):
        """The comparison table (``compare_study``), the groups, and the exit code that says what failed."""
        rows = {}
        for label in self.ctx.finished:
            chain = self.ctx[f'diffusion_{label}']
            row = {
                'diffusion': chain.outputs.summary,
                'model': orm.load_node(self.ctx.models[label]),
                'md_parameters': chain.inputs.md.md.parameters,
            }
            if 'arrhenius' in chain.outputs:
                row['arrhenius'] = chain.outputs.arrhenius
            if f'training_{label}' in self.ctx:
                row['test_metrics'] = self.ctx[f'training_{label}'].outputs.test_metrics
            rows[label] = row
        failed = orm.Dict(dict(self.ctx.failed))
        if rows:
            comparison, node = compare_study.run_get_node(failed=failed, **rows)
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_COMPARISON_FAILED.format(message=node.exit_message)
            self.out('comparison', comparison)
            self._add_to_groups(comparison)
            self.report(f'comparison of {len(rows)} row(s): compare_study<{node.pk}> → Dict<{comparison.pk}>')
        failed_text = '; '.join(f'{label}: {reason}' for label, reason in self.ctx.failed.items())
        if not rows:
            return self.exit_codes.ERROR_ALL_BRANCHES_FAILED.format(failed=failed_text or 'no row')
        if self.ctx.failed:
            return self.exit_codes.ERROR_SOME_BRANCHES_FAILED.format(failed=failed_text)
        return None

    def _add_to_groups(self, comparison: orm.Dict) -> None:
        """Comparison, training sets and models into ``mlffdiff/study/<pk>``; the study into STUDIES_GROUP."""
        group, _ = orm.Group.collection.get_or_create(f'mlffdiff/study/{self.node.pk}')
        nodes = [comparison, *(orm.load_node(pk) for pk in self.ctx.training_sets.values())]
        nodes += [orm.load_node(pk) for pk in self.ctx.models.values()]
        group.add_nodes(nodes)
        studies, _ = orm.Group.collection.get_or_create(STUDIES_GROUP)
        studies.add_nodes([self.node])
