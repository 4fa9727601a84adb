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
from ..calculations.train import get_writer
from ..data.mlff_model import MlffModel
from ..dft import DftEngineError, get_dft_engine, level_overrides
from ..environments.engines import setup_label
from ..functions.comparison import compare_study
from ..functions.levels import align_training_sets, compare_labels
from ..functions.sampling import sample_configurations, sampling_parameters
from ..functions.split import SPLIT_PARAMETERS, split_counts, train_count, train_size_check
from ..protocols import ProtocolMixin, merge
from .diffusion import DiffusionWorkChain, check_temperatures, namespace_inputs
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


def _levels(dft_engine: str, reference_levels) -> list[tuple[str, dict]]:
    """``[(level, settings overrides)]`` of the reference-level axis, cheapest first ([] without the axis)."""
    if not reference_levels:
        return []
    items = reference_levels.items() if isinstance(reference_levels, Mapping) else [(n, n) for n in reference_levels]
    try:
        engine = get_dft_engine(dft_engine)
        return [(str(name).strip().lower(), level_overrides(engine, level)) for name, level in items]
    except DftEngineError as exception:
        raise ValueError(str(exception)) from exception


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
        settings = {'': reference['dft_settings']}
        settings.update(
            {key[len(functional) + 1 :]: value for key, value in (inputs.get('level_settings') or {}).items()
             if key.startswith(f'{functional}_')}
        )  # fmt: skip
        for level, dft_settings in settings.items():
            try:
                engine.build(reference['code'], structure, functional, dft_settings.get_dict(), options, **kwargs)
            except (ValueError, TypeError, KeyError) as exception:
                where = f'{functional}, level {level}' if level else functional
                return f'{where}: the DFT inputs cannot be built: {exception}'
    return axes_problem(inputs, functionals, architectures)


def axes_problem(inputs, functionals: list[str], architectures: list[str]) -> str | None:
    """What is wrong with the training-choice axes (reference levels, dataset sizes), or None."""
    levels = list(inputs['reference_levels'].get_list()) if 'reference_levels' in inputs else []
    if levels:
        if not functionals:
            return 'reference_levels need reference data: give at least one functional.'
        problem = levels_problem(levels, inputs.get('level_settings') or {}, functionals)
        if problem:
            return problem
        for functional in functionals:
            named = inputs['reference'][functional].get('level')
            if named is None or named.value != levels[-1]:
                return (
                    f'reference.{functional}.level must name the last reference level ({levels[-1]!r}): its '
                    'dft_settings are the reference labels.'
                )
    elif inputs.get('level_settings'):
        return 'level_settings without reference_levels: name the levels (cheapest first, the reference last).'
    sizes = list(inputs['dataset_sizes'].get_list()) if 'dataset_sizes' in inputs else []
    if sizes:
        if not architectures:
            return 'dataset_sizes need architectures to train.'
        n_configurations = inputs['sampling'].get_dict().get('n_configurations')
        for architecture in architectures:
            training = inputs['training'][architecture]
            split = training.get('split_parameters')
            fractions = (split.get_dict() if split is not None else {}).get(
                'fractions', SPLIT_PARAMETERS['fractions'].default
            )
            problem = sizes_problem(sizes, n_configurations, fractions)
            if problem:
                return problem
            problem = _too_few_for(architecture, training, sizes, n_configurations, fractions)
            if problem:
                return problem
    return None


def _too_few_for(architecture: str, training, sizes: Sequence, n_configurations: int | None, fractions) -> str | None:
    """Whether a dataset size leaves fewer training configurations than the architecture's settings need (MACE:
    its batch size), for the configurations sampled (failed DFT can only lower the count further)."""
    if n_configurations is None:
        return None
    writer = get_writer(architecture)
    try:
        values = writer.validate(training['train']['train']['parameters'].get_dict())
    except (KeyError, ValueError):
        return None  # reported by the training's own validation
    n_train = split_counts(n_configurations, fractions)[0]
    for size in sizes:
        problem = writer.training_set_problem(values, train_count(n_train, size))
        if problem:
            return f'dataset size {size!r}: {problem}.'
    return None


def size_label(size: int | float) -> str:
    """The row-label part of a dataset size: ``n12`` for 12 configurations, ``p50`` for half the train part."""
    return f'n{size}' if isinstance(size, int) else f'p{100 * size:g}'.replace('.', '_')


def row_label(functional: str, architecture: str, level: str | None = None, size: int | float | None = None) -> str:
    """Label of one row of the comparison (and of the calls of its branch): ``pbe_mace``, ``pretrained_chgnet``;
    with the training-choice axes ``pbe_gamma_p50_mace`` (reference level, dataset size)."""
    parts = [functional, *([level] if level else []), *([size_label(size)] if size is not None else []), architecture]
    return '_'.join(parts).replace('-', '_').replace('.', '_')


def levels_problem(levels: Sequence[str], level_settings: Mapping, functionals: Sequence[str]) -> str | None:
    """What is wrong with the reference levels and their settings, or None."""
    if len(set(levels)) != len(levels):
        return f'reference_levels lists a level twice: {list(levels)}.'
    if len(levels) < 2:
        return f'reference_levels needs two or more levels (cheapest first, the reference last), got {list(levels)}.'
    bad = [level for level in levels if not level.replace('_', '').isalnum() or not level.islower()]
    if bad:
        return f'reference level names must be lower-case letters, digits and _: {bad}.'
    wanted = {f'{functional}_{level}' for functional in functionals for level in levels[:-1]}
    missing, extra = sorted(wanted - set(level_settings)), sorted(set(level_settings) - wanted)
    if missing:
        return f'no level_settings for {", ".join(missing)}: every level but the last needs its DFT settings.'
    if extra:
        return f'level_settings {", ".join(extra)} belong to no functional × reference level of the study.'
    return None


def sizes_problem(sizes: Sequence, n_configurations: int | None, fractions: Sequence[float]) -> str | None:
    """What is wrong with the dataset sizes (given the configurations sampled), or None."""
    if len(set(sizes)) != len(sizes):
        return f'dataset_sizes lists a size twice: {list(sizes)}.'
    for size in sizes:
        problem = None if isinstance(size, int | float) and not isinstance(size, bool) else 'is not a number'
        problem = problem or train_size_check(size)
        if problem:
            return f'dataset size {size!r} {problem}.'
    if n_configurations is not None:
        n_train = split_counts(n_configurations, fractions)[0]
        too_large = [size for size in sizes if isinstance(size, int) and size > n_train]
        if too_large:
            return (
                f'dataset size(s) {too_large} larger than the train part: {n_configurations} sampled configurations '
                f'leave at most {n_train} for training (fractions {list(fractions)}).'
            )
    return None


def failure(node: orm.ProcessNode) -> str:
    """``<Process><pk> failed [<exit status>]: <message>``."""
    return f'{node.process_label}<{node.pk}> failed [{node.exit_status}]: {node.exit_message}'


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
        spec.input(
            'reference_levels',
            valid_type=orm.List,
            required=False,
            help='Reference-quality axis: DFT levels (e.g. gamma, converged), cheapest first; the last is the level of '
            'reference.<functional> (the reference labels every model is also tested against).',
        )
        spec.input_namespace(
            'level_settings',
            valid_type=orm.Dict,
            dynamic=True,
            required=False,
            help='The resolved DFT settings of every reference level but the last, as <functional>_<level>.',
        )
        spec.input(
            'dataset_sizes',
            valid_type=orm.List,
            required=False,
            help='Dataset-size axis: train on this many configurations (int) or this fraction of the train part '
            '(float in (0, 1]); nested subsets of one split, the same validation and test sets.',
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
        spec.output_namespace(
            'label_errors',
            valid_type=orm.Dict,
            dynamic=True,
            help="Per <functional>_<level>: its labels' errors against the reference level (meV/Å, meV/atom).",
        )
        spec.output_namespace(
            'label_histograms',
            valid_type=orm.ArrayData,
            dynamic=True,
            help='Per <functional>_<level>: force-error histograms against the reference level, per species.',
        )
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
        mobile_charge: float = 1.0,
        seed: int = 0,
        dft_options: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        reference_levels: Sequence[str] | Mapping[str, Mapping] | None = None,
        dataset_sizes: Sequence[int | float] | None = None,
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
        :param mobile_charge: its charge number (e), for the conductivity (written into the MD parameters).
        :param seed: seed of the splits and the training.
        :param dft_options: ``metadata.options`` of the DFT CalcJobs.
        :param overrides: replaces top-level protocol values (``sampling``, ``dft_protocol``, ``training_protocol``,
            ``training_overrides``, ``diffusion_protocol``, ``diffusion_overrides``, ``reference_protocol``,
            ``reference_max_failed_fraction``, ``dft_overrides``).
        :param reference_levels: the reference-quality axis: names of the DFT engine's levels (``gamma``,
            ``converged``; see its protocol file) or a mapping level → settings of your own level, cheapest first;
            the last level's settings go into ``reference.<functional>``, the others into ``level_settings``.
        :param dataset_sizes: the dataset-size axis: train sizes, counts (int) or fractions of the train part.
        :param engine_kwargs: ``pseudo_family`` (qe) or ``potential_family`` / ``potential_mapping`` (vasp).
        :raises ValueError: unknown protocol, name, level or override, a missing code.
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
        by_architecture: dict[str, list[str]] = {}
        for name in pretrained:
            by_architecture.setdefault(PRETRAINED_MODELS[name]['architecture'], []).append(name)
        clashes = {arch: names for arch, names in by_architecture.items() if len(names) > 1}
        if clashes:
            arch, names = next(iter(sorted(clashes.items())))
            raise ValueError(
                f'a study has one zero-shot row per architecture, got {len(names)} {arch} models ({", ".join(names)}): '
                'keep one, and compare the others with `aiida-mlffdiff launch benchmark` or a second study.'
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
        levels = _levels(dft_engine, reference_levels)
        for functional in functionals:
            for index, (level, level_settings) in enumerate(levels or [(None, {})]):
                sub = ReferenceDataWorkChain.get_builder_from_protocol(
                    dft_code,
                    {},
                    functional,
                    engine=dft_engine,
                    protocol=settings['reference_protocol'],
                    dft_protocol=settings['dft_protocol'],
                    overrides=merge(settings.get('dft_overrides') or {}, level_settings) or None,
                    options=dict(dft_options) if dft_options else None,
                    **reference_kwargs,
                )
                if index < len(levels) - 1:
                    builder.level_settings[f'{functional}_{level}'] = sub.dft_settings
                    continue
                if level is not None:
                    sub.level = orm.Str(level)
                builder.reference[functional] = namespace_inputs(sub, 'configurations', 'functional')
        if levels:
            builder.reference_levels = orm.List([level for level, _ in levels])
        if dataset_sizes:
            builder.dataset_sizes = orm.List(list(dataset_sizes))

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
            builder.training[architecture] = namespace_inputs(sub, 'training_set')

        diffusion_overrides = dict(settings.get('diffusion_overrides') or {})
        md = {
            **diffusion_overrides.pop('md', {}),
            'mobile_species': mobile_species,
            'mobile_charge': float(mobile_charge),
        }
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
            builder.diffusion[architecture] = namespace_inputs(sub, 'model', 'structure', 'temperatures')
        if models:
            builder.pretrained = models
        return builder

    # ------------------------------------------------------------------------------------------------ stages
    def setup(self):
        """Remember the rows and where failures go."""
        self.ctx.functionals = [name for name in FUNCTIONALS if name in _given(self.inputs, 'reference')]
        self.ctx.architectures = [name for name in TRAINABLE if name in _given(self.inputs, 'training')]
        self.ctx.pretrained = sorted(self.inputs.get('pretrained') or {})
        self.ctx.levels = list(self.inputs.reference_levels.get_list()) if 'reference_levels' in self.inputs else []
        self.ctx.sizes = list(self.inputs.dataset_sizes.get_list()) if 'dataset_sizes' in self.inputs else []
        self.ctx.failed = {}
        self.ctx.training_sets = {}  # functional → {level ('' without the axis) → TrainingSet pk}
        self.ctx.models = {}
        self.report(
            f'study: functionals {self.ctx.functionals or "-"} × architectures {self.ctx.architectures or "-"}'
            + (f' + pretrained {self.ctx.pretrained}' if self.ctx.pretrained else '')
            + f' at {self.inputs.temperatures.get_list()} K'
            + (f'; reference levels {self.ctx.levels}' if self.ctx.levels else '')
            + (f'; dataset sizes {self.ctx.sizes}' if self.ctx.sizes else '')
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

    def _reference_levels(self) -> list[str]:
        """The levels of the reference-level axis, the reference last (`['']` without the axis)."""
        return self.ctx.levels or ['']

    def run_reference(self):
        """One ReferenceDataWorkChain per functional and reference level, concurrently."""
        launched = {}
        for functional in self.ctx.functionals:
            for level in self._reference_levels():
                inputs = AttributeDict(self.exposed_inputs(ReferenceDataWorkChain, namespace=f'reference.{functional}'))
                inputs.configurations = self.ctx.configurations
                inputs.functional = orm.Str(functional)
                label, what = f'reference_{functional}', functional
                if level and level != self.ctx.levels[-1]:
                    inputs.dft_settings = self.inputs.level_settings[f'{functional}_{level}']
                    inputs.level = orm.Str(level)
                    label, what = f'reference_{functional}_{level}', f'{functional} ({level} level)'
                launched.update(self._launch(ReferenceDataWorkChain, inputs, label, what))
        return ToContext(**launched)

    def inspect_reference(self):
        """Keep the training sets that were made; with reference levels, align them and compare their labels.

        A failed level fails its rows; a failed reference level (the last) fails every row of its functional.
        """
        for functional in self.ctx.functionals:
            made, top = {}, self.ctx.levels[-1] if self.ctx.levels else ''
            for level in self._reference_levels():
                label = f'reference_{functional}' if level == top else f'reference_{functional}_{level}'
                node = self.ctx[label]
                if node.is_finished_ok:
                    made[level] = node.outputs.training_set
                    continue
                reason = failure(node)
                failed_levels = self._reference_levels() if level == top else [level]
                self.report(f'{functional}{f" ({level} level)" if level else ""}: {reason}; its rows are skipped')
                for failed_level in failed_levels:
                    for architecture in self.ctx.architectures:
                        for size in self.ctx.sizes or [None]:
                            self.ctx.failed[row_label(functional, architecture, failed_level, size)] = reason
            if top not in made:
                continue
            if len(made) > 1:
                made = self._align(functional, made, top)
            self.ctx.training_sets[functional] = {level: training_set.pk for level, training_set in made.items()}
            if top in made:
                self.out(f'training_sets.{functional}', made[top])
        return None

    def _align(self, functional: str, made: dict, top: str) -> dict:
        """Align the label sets of ``functional`` (the configurations every level labelled) and compare each cheap
        level's labels with the reference level's (outputs ``label_errors`` and ``label_histograms``)."""
        aligned, node = align_training_sets.run_get_node(**made)
        if not node.is_finished_ok:
            reason = f'align_training_sets<{node.pk}> failed: {node.exit_message}'
            self.report(f'{functional}: {reason}; its rows are skipped')
            for level in made:
                for architecture in self.ctx.architectures:
                    for size in self.ctx.sizes or [None]:
                        self.ctx.failed[row_label(functional, architecture, level, size)] = reason
            return {}
        self.report(
            f'{functional}: {aligned[top].n_structures} configurations labelled at every level: '
            f'align_training_sets<{node.pk}>'
        )
        for level in made:
            if level == top:
                continue
            compared, call = compare_labels.run_get_node(reference=aligned[top], other=aligned[level])
            if not call.is_finished_ok:
                self.report(f'{functional} {level}: compare_labels<{call.pk}> failed: {call.exit_message}')
                continue
            self.out(f'label_errors.{functional}_{level}', compared['metrics'])
            self.out(f'label_histograms.{functional}_{level}', compared['histograms'])
            metrics = compared['metrics'].get_dict()
            self.report(
                f'{functional}: {level} labels against {top}: force RMSE {metrics["force_rmse_meV_A"]:.3g} meV/Å, '
                f'energy RMSE {metrics["energy_rmse_offset_removed_meV_atom"]:.3g} meV/atom (offset removed): '
                f'compare_labels<{call.pk}>'
            )
        return dict(aligned)

    def _training_rows(self):
        """``(label, functional, level, size, architecture)`` of every row to train."""
        for functional, sets in self.ctx.training_sets.items():
            for level in sets:
                for size in self.ctx.sizes or [None]:
                    for architecture in self.ctx.architectures:
                        yield row_label(functional, architecture, level, size), functional, level, size, architecture

    def run_training(self):
        """One TrainingWorkChain per (functional, reference level, dataset size, architecture), concurrently."""
        launched = {}
        for label, functional, level, size, architecture in self._training_rows():
            inputs = AttributeDict(self.exposed_inputs(TrainingWorkChain, namespace=f'training.{architecture}'))
            sets = self.ctx.training_sets[functional]
            inputs.training_set = orm.load_node(sets[level])
            if level:
                inputs.reference_set = orm.load_node(sets[self.ctx.levels[-1]])
            if size is not None:
                split = inputs.split_parameters.get_dict() if 'split_parameters' in inputs else {}
                inputs.split_parameters = orm.Dict({**split, 'train_size': size})
            launched.update(self._launch(TrainingWorkChain, inputs, f'training_{label}', label))
        return ToContext(**launched)

    def inspect_training(self):
        """Keep the models that were trained, with their test-set errors; add the pretrained ones."""
        for label, *_ in list(self._training_rows()):
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
                training = self.ctx[f'training_{label}']
                row['test_metrics'] = training.outputs.test_metrics
                row['validation_metrics'] = training.outputs.validation_metrics
                row['train_set'] = training.outputs.split.train
                row['split_parameters'] = training.inputs.split_parameters
                if 'reference_test_metrics' in training.outputs:
                    row['reference_test_metrics'] = training.outputs.reference_test_metrics
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
        sets = [pk for by_level in self.ctx.training_sets.values() for pk in by_level.values()]
        nodes = [comparison, *(orm.load_node(pk) for pk in sets)]
        nodes += [orm.load_node(pk) for pk in self.ctx.models.values()]
        group.add_nodes(nodes)
        studies, _ = orm.Group.collection.get_or_create(STUDIES_GROUP)
        studies.add_nodes([self.node])
