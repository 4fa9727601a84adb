"""``TrainCalculation``: train a machine-learned force field (MACE, NequIP or DeePMD) on a TrainingSet.

One CalcJob for every architecture: the architecture's writer (:mod:`.writers`) validates the hyper-parameters,
writes the engine's input files and names the programs to run; this class turns that into AiiDA's ``CalcInfo``.
The job runs its programs one after the other in the same folder (``CodeRunMode.SERIAL``): NequIP trains and then
compiles with ``compile_code``; DeePMD trains, freezes and tests with the same ``dp`` code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiida import orm
from aiida.common import CalcInfo, CodeInfo, CodeRunMode
from aiida.common.folders import Folder
from aiida.engine import CalcJob, CalcJobProcessSpec
from aiida.engine.processes.calcjobs.calcjob import validate_calc_job

from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.data.training_set import TrainingSet
from aiida_mlffdiff.environments.engines import thread_variables

from .writers import WRITERS, get_protocol_parameters, get_writer

#: Thread settings of every training job: one thread per process (docs/engine_facts.md: oversubscription costs 3–15×).
#: The DeePMD variables switch off its data-loader workers and pin its intra/inter-op thread pools; MACE and NequIP
#: (torch) follow OMP_NUM_THREADS; TORCHINDUCTOR_COMPILE_THREADS=1 keeps nequip-compile from forking a worker pool.
THREAD_ENVIRONMENT = {**thread_variables('deepmd'), 'TORCHINDUCTOR_COMPILE_THREADS': '1'}


#: Start and end of the job's commands (seconds since the epoch, one per line): the training's wall time (cost).
TIMING_FILE = '_mlffdiff_timing.txt'


def _default_environment() -> dict[str, str]:
    return dict(THREAD_ENVIRONMENT)


def validate_architecture(value: orm.Str, _) -> str | None:
    """The architecture must have a writer."""
    if value is not None and value.value not in WRITERS:
        return f'unknown architecture {value.value!r}: accepted are {", ".join(sorted(WRITERS))}.'
    return None


#: Fewest configurations a training set must hold (a single configuration cannot constrain a force field).
MIN_TRAINING_CONFIGURATIONS = 2


def training_code_problem(architecture: str, code, compile_code=None) -> str | None:
    """A code registered by ``aiida-mlffdiff setup`` for another engine (its ``mlffdiff_engine`` extra): e.g. pw.x
    given as the MACE training code, which would only fail in the job. Codes without the extra are not judged."""
    from ..architectures import ARCHITECTURES

    wanted = ARCHITECTURES[architecture].environment
    for role, node in (('code', code), ('compile_code', compile_code)):
        engine = node.base.extras.get('mlffdiff_engine', None) if node is not None else None
        if engine and engine != wanted and not engine.endswith(f'-{wanted}'):
            return (
                f'{role} {node.full_label} belongs to the {engine!r} environment, but {architecture} trains in the '
                f'{wanted!r} environment (`aiida-mlffdiff setup --engines {wanted}` registers its codes).'
            )
    return None


def validate_inputs(inputs: dict[str, Any], ctx) -> str | None:
    """Check at submission what the engine would otherwise reject minutes later.

    Hyper-parameters (unknown keys, types, values), species coverage of the training and validation sets, and the
    presence of ``compile_code`` where the architecture needs it. Ports excluded by a wrapping workchain are skipped.
    Runs aiida-core's own CalcJob checks first.
    """
    message = validate_calc_job(inputs, ctx)
    if message:
        return message
    if 'architecture' not in inputs or inputs['architecture'].value not in WRITERS:
        return None  # reported by the port validator, or not given (yet) by a wrapping workchain
    writer = get_writer(inputs['architecture'].value)
    problem = training_code_problem(inputs['architecture'].value, inputs.get('code'), inputs.get('compile_code'))
    if problem:
        return problem
    if writer.needs_compile_code and 'compile_code' in ctx and 'compile_code' not in inputs:
        return (
            f'architecture {writer.architecture} needs compile_code ({writer.executables}): give the nequip-compile '
            'code of the same environment as the training code.'
        )
    training = inputs.get('training_set')
    validation = inputs.get('validation_set')
    if training is not None and training.n_structures < MIN_TRAINING_CONFIGURATIONS:
        return (
            f'training_set {training.pk} holds {training.n_structures} configuration(s): at least '
            f'{MIN_TRAINING_CONFIGURATIONS} are needed to train a model.'
        )
    parameters = inputs['parameters'].get_dict() if 'parameters' in inputs else {}
    try:
        values = writer.validate(
            parameters,
            training.species if training is not None else (),
            validation.species if validation is not None else (),
        )
    except ValueError as exception:
        return str(exception)
    if training is not None:
        problem = writer.training_set_problem(values, training.n_structures)
        if problem:
            return f'training_set {training.pk}: {problem}.'
    return None


class TrainCalculation(CalcJob):
    """Train an MLFF (``architecture``: mace | nequip | deepmd) on ``training_set``, validating on ``validation_set``.

    Outputs: ``model`` (:class:`MlffModel`, the deployable file), ``learning_curve`` (ArrayData per epoch or step)
    and ``validation_metrics`` (Dict: final validation RMSEs in meV/atom and meV/Å). The hyper-parameters and their
    units: ``get_writer(architecture).describe()``; protocols: :meth:`get_protocol_parameters`.

    Codes: ``code`` is the training executable (``mace_run_train``, ``nequip-train`` or ``dp``); NequIP also needs
    ``compile_code`` (``nequip-compile`` of the same environment).

    Exit codes (a failed run never has a ``model`` output; its learning curve is kept when readable):
    300 ERROR_MISSING_OUTPUT (no readable log/learning curve/final errors), 310 ERROR_MODEL_MISSING (no model file),
    320 ERROR_LOSS_NOT_FINITE (NaN/inf loss: retry with a lower ``learning_rate``), 330 ERROR_COMPILE_FAILED
    (nequip-compile or dp freeze failed after a complete training), 340 ERROR_TRAINING_INCOMPLETE (the engine
    stopped early: crash or kill), 350 ERROR_INVALID_MODEL (the file cannot become an MlffModel), and aiida-core's
    120 ERROR_SCHEDULER_OUT_OF_WALLTIME when the scheduler reports it.
    """

    @classmethod
    def define(cls, spec: CalcJobProcessSpec) -> None:
        """Inputs, outputs and exit codes."""
        super().define(spec)
        spec.input(
            'compile_code',
            valid_type=orm.AbstractCode,
            required=False,
            help='nequip-compile of the same environment as the training code (required for nequip).',
        )
        spec.input(
            'architecture',
            valid_type=orm.Str,
            validator=validate_architecture,
            help=f'Network architecture: {", ".join(sorted(WRITERS))}.',
        )
        spec.input('training_set', valid_type=TrainingSet, help='Reference configurations to train on.')
        spec.input(
            'validation_set',
            valid_type=TrainingSet,
            help='Reference configurations for validation (learning curve, early stopping, final metrics).',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            help='Hyper-parameters of the architecture (validated at submission; missing keys take the defaults).',
        )
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Random seed of the training run.')
        options = spec.inputs['metadata']['options']
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        options['withmpi'].default = False
        options['environment_variables'].default = _default_environment
        options['parser_name'].default = 'mlffdiff.train'
        spec.inputs.validator = validate_inputs

        spec.output('model', valid_type=MlffModel, required=False, help='The trained, deployable model.')
        spec.output(
            'learning_curve',
            valid_type=orm.ArrayData,
            required=False,
            help='Losses and validation errors per epoch (mace, nequip) or per displayed step (deepmd).',
        )
        spec.output(
            'validation_metrics',
            valid_type=orm.Dict,
            required=False,
            help='Final validation errors: energy RMSE (meV/atom), force RMSE (meV/Å), epochs or steps.',
        )
        spec.default_output_node = 'validation_metrics'

        spec.exit_code(
            300,
            'ERROR_MISSING_OUTPUT',
            invalidates_cache=True,
            message='A log, learning curve or final validation result is missing or unreadable: {detail}',
        )
        spec.exit_code(
            310,
            'ERROR_MODEL_MISSING',
            invalidates_cache=True,
            message='Training did not produce the model file {filename}: {detail}',
        )
        spec.exit_code(
            320,
            'ERROR_LOSS_NOT_FINITE',
            invalidates_cache=True,
            message='The loss or the validation errors became NaN or infinite: {detail}',
        )
        spec.exit_code(
            330,
            'ERROR_COMPILE_FAILED',
            invalidates_cache=True,
            message='Training finished but compiling/freezing the model failed: {detail}',
        )
        spec.exit_code(
            340,
            'ERROR_TRAINING_INCOMPLETE',
            invalidates_cache=True,
            message='Training stopped before its end (crash or killed job): {detail}',
        )
        spec.exit_code(
            350,
            'ERROR_INVALID_MODEL',
            invalidates_cache=True,
            message='The model file could not be stored as an MlffModel: {detail}',
        )

    @staticmethod
    def get_protocol_parameters(
        architecture: str, protocol: str | None = None, overrides: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Hyper-parameters of ``architecture`` for ``protocol`` (fast | moderate | precise) with ``overrides``."""
        return get_protocol_parameters(architecture, protocol, overrides)

    def missing_thread_variables(self) -> dict[str, str]:
        """Thread variables (one thread) that ``environment_variables`` lacks: the job exports them itself.

        The defaults of ``metadata.options.environment_variables`` set them all; a user who replaces that dictionary
        (to add a variable, or to give an engine more threads) keeps one thread for everything not named there.
        """
        environment = self.node.get_option('environment_variables') or {}
        return {name: value for name, value in THREAD_ENVIRONMENT.items() if name not in environment}

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the engine's inputs into ``folder`` and describe the programs to run and the files to retrieve."""
        writer = get_writer(self.inputs.architecture.value)
        training, validation = self.inputs.training_set, self.inputs.validation_set
        parameters = self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}
        values = writer.validate(parameters, training.species, validation.species)
        species = writer.model_species(values, training.species)
        use_stress = writer.uses_stress(values, training.has_stress and validation.has_stress)

        files = writer.write(
            Path(folder.abspath),
            training.get_atoms(),
            validation.get_atoms(),
            values,
            species=species,
            seed=self.inputs.seed.value,
            use_stress=use_stress,
        )
        codes_info = []
        for command in files.commands:
            code = self.inputs[command.code]
            codeinfo = CodeInfo()
            codeinfo.code_uuid = code.uuid
            codeinfo.cmdline_params = list(command.arguments)
            codeinfo.stdout_name = command.stdout
            codeinfo.stderr_name = command.stderr
            codeinfo.withmpi = self.node.get_option('withmpi')
            codes_info.append(codeinfo)

        calcinfo = CalcInfo()
        exports = [f'export {name}={value}' for name, value in self.missing_thread_variables().items()]
        if 'TORCHINDUCTOR_CACHE_DIR' not in (self.node.get_option('environment_variables') or {}):
            # a cache of its own: concurrent nequip-compile jobs sharing torch's default per-user cache read
            # each other's half-written entries (measured: 'json parse error ... empty input', 1 of 4 at once)
            exports.append('export TORCHINDUCTOR_CACHE_DIR="$PWD/torchinductor_cache"')
        calcinfo.prepend_text = '\n'.join([*exports, f'date +%s.%N > {TIMING_FILE}'])
        calcinfo.append_text = f'date +%s.%N >> {TIMING_FILE}'
        calcinfo.codes_info = codes_info
        calcinfo.codes_run_mode = CodeRunMode.SERIAL
        calcinfo.retrieve_list = [*files.retrieve, TIMING_FILE]
        calcinfo.local_copy_list = []
        calcinfo.remote_copy_list = []
        return calcinfo
