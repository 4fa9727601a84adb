"""Training workflow: split a TrainingSet → train one architecture (with restarts) → evaluate on the test set.

``TrainBaseWorkChain`` wraps :class:`~aiida_mlffdiff.calculations.train.TrainCalculation` in aiida-core's
``BaseRestartWorkChain``: a diverging loss (NaN/inf) is retried with half the learning rate, a job out of
walltime with 1.5x the walltime, both a bounded number of times. ``TrainingWorkChain`` (``mlffdiff.training``)
is the chain users launch, usually through ``get_builder_from_protocol``.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ProcessHandlerReport, ToContext, WorkChain, process_handler, while_

from ..calculations.evaluate import EvaluateCalculation
from ..calculations.train import TrainCalculation
from ..calculations.writers import LEARNING_RATE_KEY, get_writer
from ..data.training_set import TrainingSet
from ..functions.split import split_training_set
from .restart import RestartWorkChain

#: Factor applied to the learning rate after a non-finite loss.
LEARNING_RATE_FACTOR = 0.5


class TrainBaseWorkChain(RestartWorkChain):
    """Run a TrainCalculation until it succeeds, handling a non-finite loss and walltime."""

    _process_class = TrainCalculation

    @classmethod
    def define(cls, spec):
        """Inputs of the TrainCalculation in the ``train`` namespace; its outputs are exposed."""
        super().define(spec)
        spec.expose_inputs(TrainCalculation, namespace='train')
        spec.expose_outputs(TrainCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.exit_code(
            310, 'ERROR_LOSS_KEEPS_DIVERGING', message='The loss stayed non-finite after lowering the learning rate.'
        )

    def setup(self):
        """Take the TrainCalculation inputs into the context, where the handlers may change them."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(TrainCalculation, 'train'))

    @process_handler(priority=500, exit_codes=[TrainCalculation.exit_codes.ERROR_LOSS_NOT_FINITE])
    def handle_non_finite_loss(self, node):
        """The loss diverged: retry with the learning rate multiplied by ``LEARNING_RATE_FACTOR``."""
        architecture = self.ctx.inputs.architecture.value
        parameters = {**get_writer(architecture).defaults(), **self.ctx.inputs.parameters.get_dict()}
        old = parameters[LEARNING_RATE_KEY]
        parameters[LEARNING_RATE_KEY] = old * LEARNING_RATE_FACTOR
        self.ctx.inputs.parameters = orm.Dict(parameters)
        self.report_error_handled(
            node, f'restarting with {LEARNING_RATE_KEY} {old:g} → {parameters[LEARNING_RATE_KEY]:g}'
        )
        return ProcessHandlerReport(do_break=True)


def shared_configurations(train: TrainingSet, test: TrainingSet) -> int:
    """How many test configurations are also in the training part (species, cell and positions to 1e-6 Å)."""
    from ..data.training_set import configuration_key

    known = {configuration_key(atoms) for atoms in train.get_atoms()}
    return sum(configuration_key(atoms) in known for atoms in test.get_atoms())


class TrainingWorkChain(WorkChain):
    """Split a TrainingSet (seeded), train one architecture on it, evaluate the model on the held-out test set."""

    @classmethod
    def define(cls, spec):
        """Inputs: the full TrainingSet, split parameters, the training and evaluation namespaces."""
        super().define(spec)
        spec.input('training_set', valid_type=TrainingSet, help='All reference configurations (eV, eV/Å, eV/Å³).')
        spec.input(
            'split_parameters',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({'fractions': [0.8, 0.1, 0.1], 'seed': 0}),
            help='Train/validation/test fractions and the seed of the split.',
        )
        spec.input(
            'reference_set',
            valid_type=TrainingSet,
            required=False,
            help='The same configurations labelled at a higher level (e.g. a converged k-point mesh): the model is '
            'also evaluated on its test part (reference_test_metrics).',
        )
        spec.expose_inputs(
            TrainBaseWorkChain, namespace='train', exclude=('train.training_set', 'train.validation_set')
        )
        spec.expose_inputs(EvaluateCalculation, namespace='evaluate', exclude=('model', 'dataset'))
        spec.outline(cls.split, cls.run_training, cls.inspect_training, cls.run_evaluation, cls.inspect_evaluation)
        spec.output('model', help='The deployable model (MlffModel).')
        spec.output('learning_curve', valid_type=orm.ArrayData)
        spec.output('validation_metrics', valid_type=orm.Dict, help='Final validation errors (meV/atom, meV/Å).')
        spec.output('test_metrics', valid_type=orm.Dict, help='Errors on the held-out test set (meV/atom, meV/Å).')
        spec.output('test_parity', valid_type=orm.ArrayData, help='Reference vs predicted test-set values.')
        spec.output(
            'reference_test_metrics',
            valid_type=orm.Dict,
            required=False,
            help='Errors on the test set labelled at the reference level (meV/atom, meV/Å), with reference_set.',
        )
        spec.output('reference_test_parity', valid_type=orm.ArrayData, required=False)
        spec.output_namespace('split', valid_type=TrainingSet, dynamic=True, help='train, validation and test sets.')
        spec.exit_code(401, 'ERROR_SPLIT_FAILED', message='The training set could not be split.')
        spec.exit_code(402, 'ERROR_TRAINING_FAILED', message='The training failed, also after restarts.')
        spec.exit_code(403, 'ERROR_EVALUATION_FAILED', message='The evaluation on the test set failed.')

    @classmethod
    def get_builder_from_protocol(
        cls,
        train_code: orm.Code,
        evaluate_code: orm.Code,
        training_set: TrainingSet | None,
        architecture: str,
        *,
        protocol: str = 'fast',
        compile_code: orm.Code | None = None,
        overrides: dict | None = None,
        seed: int = 0,
    ):
        """A builder with the hyper-parameters of ``protocol`` (fast | moderate | precise) for ``architecture``.

        :param training_set: the full set (``None``: set later, as the study does per functional).
        :param overrides: hyper-parameters that replace the protocol's values.
        """
        parameters = TrainCalculation.get_protocol_parameters(architecture, protocol, overrides)
        builder = cls.get_builder()
        if training_set is not None:
            builder.training_set = training_set
        builder.split_parameters = orm.Dict({'fractions': [0.8, 0.1, 0.1], 'seed': seed})
        builder.train.train.code = train_code
        builder.train.train.architecture = orm.Str(architecture)
        builder.train.train.parameters = orm.Dict(parameters)
        builder.train.train.seed = orm.Int(seed)
        if compile_code is not None:
            builder.train.train.compile_code = compile_code
        builder.evaluate.code = evaluate_code
        one_process = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}  # the training and evaluation drivers' layout
        builder.train.train.metadata.options.resources = dict(one_process)
        builder.evaluate.metadata.options.resources = dict(one_process)
        return builder

    def split(self):
        """Seeded train/validation/test split (a calcfunction, so the split is in the provenance)."""
        outputs, node = split_training_set.run_get_node(
            training_set=self.inputs.training_set,
            parameters=self.inputs.split_parameters,
            **({'reference_set': self.inputs.reference_set} if 'reference_set' in self.inputs else {}),
        )
        if not node.is_finished_ok:
            self.report(f'split_training_set<{node.pk}> failed: {node.exit_message}')
            return self.exit_codes.ERROR_SPLIT_FAILED
        self.ctx.split = outputs
        sizes = ', '.join(f'{name} {outputs[name].n_structures}' for name in ('train', 'validation', 'test'))
        self.report(f'split {self.inputs.training_set.n_structures} configurations into {sizes}')
        shared = shared_configurations(outputs['train'], outputs['test'])
        if shared:
            self.report(
                f'warning: {shared} of the {outputs["test"].n_structures} test configurations are copies of training '
                'configurations (the training set holds duplicates): the test-set errors measure memory, not accuracy'
            )
        self.out('split', dict(outputs))
        return None

    def run_training(self):
        """Launch the TrainBaseWorkChain on the train and validation parts."""
        inputs = AttributeDict(self.exposed_inputs(TrainBaseWorkChain, 'train'))
        inputs.train = AttributeDict(inputs.train)
        inputs.train.training_set = self.ctx.split['train']
        inputs.train.validation_set = self.ctx.split['validation']
        running = self.submit(TrainBaseWorkChain, **inputs)
        self.report(f'training {inputs.train.architecture.value}: launched TrainBaseWorkChain<{running.pk}>')
        return ToContext(training=running)

    def inspect_training(self):
        """Stop with a clear exit code if training failed; otherwise expose its outputs."""
        node = self.ctx.training
        if not node.is_finished_ok:
            self.report(f'TrainBaseWorkChain<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')
            return self.exit_codes.ERROR_TRAINING_FAILED
        for name in ('model', 'learning_curve', 'validation_metrics'):
            self.out(name, node.outputs[name])
        self.report(f'trained model {node.outputs.model.__class__.__name__}<{node.outputs.model.pk}>')
        return None

    def run_evaluation(self):
        """Evaluate the model on the held-out test set (and on its reference-level labels, with reference_set)."""
        launched = {}
        for name, part in (('evaluation', 'test'), ('reference_evaluation', 'reference_test')):
            if part not in self.ctx.split:
                continue
            inputs = AttributeDict(self.exposed_inputs(EvaluateCalculation, 'evaluate'))
            inputs.model = self.ctx.training.outputs.model
            inputs.dataset = self.ctx.split[part]
            inputs.metadata = {**inputs.get('metadata', {}), 'call_link_label': name}
            running = self.submit(EvaluateCalculation, **inputs)
            self.report(f'evaluating on the {part.replace("_", " ")} set: launched EvaluateCalculation<{running.pk}>')
            launched[name] = running
        return ToContext(**launched)

    def inspect_evaluation(self):
        """Expose the test-set errors (``test_*``, and ``reference_test_*`` against the reference labels)."""
        for name, prefix in (('evaluation', 'test'), ('reference_evaluation', 'reference_test')):
            if name not in self.ctx:
                continue
            node = self.ctx[name]
            if not node.is_finished_ok:
                self.report(f'EvaluateCalculation<{node.pk}> failed [{node.exit_status}]: {node.exit_message}')
                return self.exit_codes.ERROR_EVALUATION_FAILED
            self.out(f'{prefix}_metrics', node.outputs.metrics)
            self.out(f'{prefix}_parity', node.outputs.parity)
            metrics = node.outputs.metrics.get_dict()
            summary = ', '.join(f'{key} {value:.3g}' for key, value in metrics.items() if isinstance(value, float))
            self.report(f'{prefix.replace("_", " ")}-set errors: {summary[:300]}')
        return None
