"""``MlffDiffusionStudyWorkChain``: functionals × architectures × temperatures in one provenance-tracked submission.

One shared set of sampled configurations → reference data per functional (``ReferenceDataWorkChain``) → one
``TrainingWorkChain`` per (functional, architecture) → one ``DiffusionWorkChain`` per model (plus optional
zero-shot rows for pretrained universal models, which skip reference and training) → ``compare_study``. Branches
of a stage run concurrently; a failed branch is reported and left out, the others finish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import yaml
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import ToContext, WorkChain, if_

from ..calculations.evaluate import PRETRAINED_MODELS, pretrained_model
from ..calculations.md_ensemble import md_engine_code
from ..dft import DftEngineError, get_dft_engine
from ..functions.comparison import compare_study
from ..functions.sampling import sample_configurations, sampling_parameters
from .diffusion import DiffusionWorkChain, check_temperatures
from .reference import ReferenceDataWorkChain, fraction_problem
from .training import TrainingWorkChain

__all__ = ('TRAINABLE', 'MlffDiffusionStudyWorkChain', 'code_keys', 'default_codes')

#: Architectures the study trains, and the code keys each needs (``<engine>_<key>`` in the ``codes`` namespace).
TRAINABLE: dict[str, dict[str, str]] = {
    'mace': {'train': 'train', 'python': 'python'},
    'nequip': {'train': 'train', 'python': 'python', 'compile': 'compile'},
    'deepmd': {'train': 'dp', 'python': 'python'},
}
#: Group every study's results are added to (plus one group per study: ``mlffdiff/study/<pk>``).
STUDIES_GROUP = 'mlffdiff/studies'


def load_protocols() -> dict:
    """The study protocols (``protocols/study.yaml``)."""
    text = resources.files('aiida_mlffdiff.protocols').joinpath('study.yaml').read_text()
    return yaml.safe_load(text)


def code_keys(architectures: Sequence[str], pretrained: Sequence[str]) -> list[str]:
    """Keys of the ``codes`` namespace a study needs, e.g. ``mace_train``, ``mace_python``, ``pretrained_python``."""
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
            codes[key] = orm.load_code(f'mlffdiff-{engine}-{executable}@{computer}')
        except NotExistent:
            missing.append(f'mlffdiff-{engine}-{executable}@{computer}')
    if missing:
        engines = sorted({label.split('-')[1] for label in missing})
        raise ValueError(
            f'missing code(s) {", ".join(missing)}: run `aiida-mlffdiff setup --engines {",".join(engines)} '
            f'--computer {computer}` (or register them yourself, see docs/codes.md).'
        )
    return codes


def _names(value) -> list[str]:
    return [str(item).strip().lower() for item in (value.get_list() if isinstance(value, orm.List) else value)]


def validate_fraction(value, _=None) -> str | None:
    """A fraction in [0, 1], as ReferenceDataWorkChain's max_failed_fraction."""
    return fraction_problem('reference_max_failed_fraction', value.value) if value is not None else None


def validate_inputs(inputs, _ctx=None) -> str | None:
    """Everything a study can check before it starts: names, codes, temperatures, structure vs engine and model."""
    functionals, architectures = _names(inputs['functionals']), _names(inputs['architectures'])
    pretrained = _names(inputs['pretrained']) if 'pretrained' in inputs else []
    if not architectures and not pretrained:
        return 'no architecture and no pretrained model: the study would have no row.'
    unknown = sorted(set(architectures) - set(TRAINABLE))
    if unknown:
        return f'unknown architecture(s) {", ".join(unknown)}; known: {", ".join(TRAINABLE)}.'
    unknown = sorted(set(pretrained) - set(PRETRAINED_MODELS))
    if unknown:
        return f'unknown pretrained model(s) {", ".join(unknown)}; known: {", ".join(PRETRAINED_MODELS)}.'
    if architectures and not functionals:
        return 'architectures need reference data: give at least one functional (pbe, hse06).'
    for name, values in (('functionals', functionals), ('architectures', architectures), ('pretrained', pretrained)):
        if len(set(values)) != len(values):
            return f'{name} lists a value twice: {values}.'
    problem = check_temperatures(list(inputs['temperatures'].get_list()))
    if problem:
        return problem
    try:
        sampling_parameters(inputs['sampling'].get_dict())
    except ValueError as exception:
        return str(exception)
    missing = sorted(set(code_keys(architectures, pretrained)) - set(inputs.get('codes', {})))
    if missing:
        return f'missing code(s) for {", ".join(missing)} in the codes namespace (run `aiida-mlffdiff setup`).'
    structure = inputs['structure']
    mobile = inputs['mobile_species'].value
    md_structure = inputs.get('md_structure', structure)
    for name, cell in (('structure', structure), ('md_structure', md_structure)):
        symbols = sorted(set(cell.get_ase().get_chemical_symbols()))
        if mobile not in symbols:
            return f'the {name} has no {mobile} (its elements: {", ".join(symbols)}): nothing would diffuse.'
    if functionals:
        try:
            engine = get_dft_engine(inputs['dft_engine'].value)
        except DftEngineError as exception:
            return str(exception)
        if 'dft_code' not in inputs:
            return f'no dft_code: the {inputs["dft_engine"].value} engine needs its code (e.g. pw.x for qe).'
        kwargs = {key: inputs[key].value for key in ('pseudo_family', 'potential_family') if key in inputs}
        if 'potential_mapping' in inputs:
            kwargs['potential_mapping'] = inputs['potential_mapping'].get_dict()
        for functional in functionals:
            problem = engine.validate(structure, functional, inputs['dft_protocol'].value, **kwargs)
            if problem:
                return f'{functional}: {problem}'
    return None


def row_label(functional: str, architecture: str) -> str:
    """Label of one row of the comparison (and of the calls of its branch): ``pbe_mace``, ``pretrained_chgnet``."""
    return f'{functional}_{architecture}'.replace('-', '_').replace('.', '_')


def failure(node: orm.ProcessNode) -> str:
    """``<Process><pk> failed [<exit status>]: <message>``."""
    return f'{node.process_label}<{node.pk}> failed [{node.exit_status}]: {node.exit_message}'


def study_md_code(model, n_atoms: int, given: orm.AbstractCode, md_parameters: Mapping[str, Any]) -> orm.AbstractCode:
    """The code that runs ``model``'s MD in a study: the measured fastest engine on ``given``'s computer.

    ``given`` is the study's python of the model's environment (the ``ase`` engine). When the MD parameters name an
    engine, or the faster engine's code is not registered there (``aiida-mlffdiff setup`` labels), ``given`` runs it.
    """
    if 'engine' in md_parameters:
        return given
    try:
        engine, code = md_engine_code(model, n_atoms, given.computer.label)
    except ValueError:
        return given
    return code if engine != 'ase' else given


class MlffDiffusionStudyWorkChain(WorkChain):
    """The seed study: DFT reference data per functional, one model per (functional, architecture), D(T) per model."""

    @classmethod
    def define(cls, spec):
        """Inputs (names, structure, codes, protocols); outputs (every sub-result and the comparison)."""
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='Cell the configurations are sampled from (Å).')
        spec.input(
            'md_structure', valid_type=orm.StructureData, required=False, help='Cell of the MD (default: structure).'
        )
        spec.input('functionals', valid_type=orm.List, help="Functionals of the reference data: 'pbe', 'hse06'.")
        spec.input('architectures', valid_type=orm.List, help="Architectures trained: 'mace', 'nequip', 'deepmd'.")
        spec.input(
            'pretrained',
            valid_type=orm.List,
            required=False,
            help="Zero-shot rows of pretrained models ('chgnet-0.3.0', '7net-0'): no reference data, no training.",
        )
        spec.input('temperatures', valid_type=orm.List, help='MD temperatures (K).')
        spec.input('mobile_species', valid_type=orm.Str, default=lambda: orm.Str('Li'), help='The diffusing element.')
        spec.input('sampling', valid_type=orm.Dict, help='Parameters of sample_configurations.')
        spec.input('dft_engine', valid_type=orm.Str, default=lambda: orm.Str('qe'), help="'qe' or 'vasp'.")
        spec.input('dft_code', valid_type=orm.AbstractCode, required=False, help='pw.x (qe) or vasp code.')
        spec.input('dft_protocol', valid_type=orm.Str, default=lambda: orm.Str('moderate'), help='DFT protocol.')
        spec.input('dft_overrides', valid_type=orm.Dict, required=False, help='Overrides of the DFT protocol.')
        spec.input('dft_options', valid_type=orm.Dict, required=False, help='metadata.options of the DFT CalcJobs.')
        spec.input('pseudo_family', valid_type=orm.Str, required=False, help='qe: aiida-pseudo family label.')
        spec.input('potential_family', valid_type=orm.Str, required=False, help='vasp: POTCAR family label.')
        spec.input('potential_mapping', valid_type=orm.Dict, required=False, help='vasp: element → POTCAR symbol.')
        spec.input('reference_protocol', valid_type=orm.Str, default=lambda: orm.Str('moderate'))
        spec.input(
            'reference_max_failed_fraction',
            valid_type=orm.Float,
            required=False,
            validator=validate_fraction,
            help="Share of configurations whose DFT may fail per functional (default: the reference protocol's).",
        )
        spec.input('training_protocol', valid_type=orm.Str, default=lambda: orm.Str('fast'))
        spec.input(
            'training_overrides', valid_type=orm.Dict, required=False, help='{architecture: {hyper-parameter: value}}.'
        )
        spec.input('diffusion_protocol', valid_type=orm.Str, default=lambda: orm.Str('fast'))
        spec.input(
            'diffusion_overrides', valid_type=orm.Dict, required=False, help='Overrides of the diffusion protocol.'
        )
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Seed of the splits and the training.')
        spec.input_namespace(
            'codes',
            valid_type=orm.AbstractCode,
            dynamic=True,
            help='Engine codes by <engine>_<key>: mace_train, mace_python, nequip_train, nequip_compile, '
            'nequip_python, deepmd_dp, deepmd_python, pretrained_python.',
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
        overrides: Mapping[str, Any] | None = None,
        **engine_kwargs: Any,
    ):
        """A builder with the settings of ``protocol`` (fast | moderate | precise, ``protocols/study.yaml``).

        :param temperatures: MD temperatures (K).
        :param codes: engine codes by ``<engine>_<key>``; missing ones are loaded as
            ``mlffdiff-<engine>-<key>@computer`` (registered by ``aiida-mlffdiff setup``).
        :param overrides: replaces top-level protocol values (``sampling``, ``dft_protocol``, ``training_protocol``,
            ``training_overrides``, ``diffusion_protocol``, ``diffusion_overrides``, ``reference_protocol``,
            ``reference_max_failed_fraction``, ``dft_overrides``).
        :param engine_kwargs: ``pseudo_family`` (qe) or ``potential_family`` / ``potential_mapping`` (vasp).
        :raises ValueError: unknown protocol or override, a missing code.
        """
        protocols = load_protocols()
        protocol = protocol or protocols['default_protocol']
        if protocol not in protocols['protocols']:
            raise ValueError(f'unknown protocol {protocol!r}; known: {", ".join(protocols["protocols"])}.')
        settings = {key: value for key, value in protocols['protocols'][protocol].items() if key != 'description'}
        settings.setdefault('reference_protocol', 'fast' if protocol == 'fast' else 'moderate')
        settings.setdefault('reference_max_failed_fraction', None)
        unknown = sorted(set(overrides or {}) - set(settings))
        if unknown:
            raise ValueError(f'unknown override(s) {", ".join(unknown)}; known: {", ".join(sorted(settings))}.')
        settings.update(overrides or {})
        functionals, architectures = list(functionals), list(architectures)
        wanted = code_keys([a for a in architectures if a in TRAINABLE], list(pretrained))
        codes = dict(codes or {})
        codes.update(default_codes([key for key in wanted if key not in codes], computer))

        builder = cls.get_builder()
        builder.structure = structure
        if md_structure is not None:
            builder.md_structure = md_structure
        builder.functionals = orm.List(functionals)
        builder.architectures = orm.List(architectures)
        if pretrained:
            builder.pretrained = orm.List(list(pretrained))
        builder.temperatures = orm.List([float(t) for t in temperatures])
        builder.sampling = orm.Dict(settings['sampling'])
        builder.dft_engine = orm.Str(dft_engine)
        if dft_code is not None:
            builder.dft_code = dft_code
        builder.dft_protocol = orm.Str(settings['dft_protocol'])
        builder.reference_protocol = orm.Str(settings['reference_protocol'])
        if settings.get('reference_max_failed_fraction') is not None:
            builder.reference_max_failed_fraction = orm.Float(settings['reference_max_failed_fraction'])
        builder.training_protocol = orm.Str(settings['training_protocol'])
        if settings.get('dft_overrides'):
            builder.dft_overrides = orm.Dict(settings['dft_overrides'])
        if settings.get('training_overrides'):
            builder.training_overrides = orm.Dict(settings['training_overrides'])
        builder.diffusion_protocol = orm.Str(settings['diffusion_protocol'])
        if settings.get('diffusion_overrides'):
            builder.diffusion_overrides = orm.Dict(settings['diffusion_overrides'])
        for key in ('pseudo_family', 'potential_family'):
            if engine_kwargs.get(key):
                builder[key] = orm.Str(engine_kwargs.pop(key))
        if engine_kwargs.get('potential_mapping'):
            builder.potential_mapping = orm.Dict(engine_kwargs.pop('potential_mapping'))
        if engine_kwargs:
            raise ValueError(f'unknown argument(s) {", ".join(sorted(engine_kwargs))}.')
        builder.codes = {key: codes[key] for key in wanted}
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
        self.ctx.functionals = _names(self.inputs.functionals)
        self.ctx.architectures = _names(self.inputs.architectures)
        self.ctx.pretrained = _names(self.inputs.pretrained) if 'pretrained' in self.inputs else []
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

    def run_reference(self):
        """One ReferenceDataWorkChain per functional, concurrently."""
        kwargs = {key: self.inputs[key].value for key in ('pseudo_family', 'potential_family') if key in self.inputs}
        if 'potential_mapping' in self.inputs:
            kwargs['potential_mapping'] = self.inputs.potential_mapping.get_dict()
        if 'reference_max_failed_fraction' in self.inputs:
            kwargs['max_failed_fraction'] = self.inputs.reference_max_failed_fraction.value
        launched = {}
        for functional in self.ctx.functionals:
            builder = ReferenceDataWorkChain.get_builder_from_protocol(
                self.inputs.dft_code,
                self.ctx.configurations,
                functional,
                engine=self.inputs.dft_engine.value,
                protocol=self.inputs.reference_protocol.value,
                overrides=self.inputs.dft_overrides.get_dict() if 'dft_overrides' in self.inputs else None,
                options=self.inputs.dft_options.get_dict() if 'dft_options' in self.inputs else None,
                **kwargs,
            )
            builder.protocol = orm.Str(self.inputs.dft_protocol.value)
            launched.update(self._launch(builder, f'reference_{functional}', functional))
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
        overrides = self.inputs.training_overrides.get_dict() if 'training_overrides' in self.inputs else {}
        codes = self.inputs.codes
        for functional, training_set in self.ctx.training_sets.items():
            for architecture in self.ctx.architectures:
                keys = TRAINABLE[architecture]
                builder = TrainingWorkChain.get_builder_from_protocol(
                    codes[f'{architecture}_{keys["train"]}'],
                    codes[f'{architecture}_python'],
                    orm.load_node(training_set),
                    architecture,
                    protocol=self.inputs.training_protocol.value,
                    compile_code=codes.get(f'{architecture}_compile'),
                    overrides=overrides.get(architecture),
                    seed=self.inputs.seed.value,
                )
                label = row_label(functional, architecture)
                launched.update(self._launch(builder, f'training_{label}', label))
        return ToContext(**launched)

    def inspect_training(self):
        """Keep the models that were trained, with their test-set errors."""
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
        for name in self.ctx.pretrained:
            model = pretrained_model(name)
            label = row_label('pretrained', model.architecture)
            self.ctx.models[label] = model.pk
            self.out(f'models.{label}', model)

    def run_diffusion(self):
        """One DiffusionWorkChain per model, concurrently."""
        structure = self.inputs.get('md_structure', self.inputs.structure)
        overrides = self.inputs.diffusion_overrides.get_dict() if 'diffusion_overrides' in self.inputs else {}
        md = {**overrides.get('md', {}), 'mobile_species': self.inputs.mobile_species.value}
        launched = {}
        for label, pk in self.ctx.models.items():
            model = orm.load_node(pk)
            builder = DiffusionWorkChain.get_builder_from_protocol(
                study_md_code(model, len(structure.sites), self.inputs.codes[f'{model.engine}_python'], md),
                model,
                structure,
                self.inputs.temperatures.get_list(),
                protocol=self.inputs.diffusion_protocol.value,
                overrides={**overrides, 'md': md},
            )
            launched.update(self._launch(builder, f'diffusion_{label}', f'{label} ({model.describe()})'))
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
            row = {'diffusion': chain.outputs.summary, 'model': orm.load_node(self.ctx.models[label])}
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
