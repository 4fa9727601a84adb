"""``EvaluateCalculation``: predict energies, forces and stresses of a TrainingSet with an MlffModel.

The job runs the shipped driver ``evaluate_model.py`` with the python of the model's engine environment
(an ``InstalledCode``; :func:`aiida_mlffdiff.environments.register_codes` creates them, or register your own on
a cluster). Everything the job needs is written into, or copied to, its working directory: the driver, the model
file(s) (from the model node's repository) and the configurations as ``dataset.extxyz`` (from the training set's
repository); nothing refers to a path on the machine that submits. Threads are pinned to one per process.

The parser (:class:`aiida_mlffdiff.parsers.evaluate.EvaluateParser`) compares the predictions with the training
set's reference labels and returns error metrics (units in the keys) and parity arrays.
"""

from __future__ import annotations

import re

from aiida import orm
from aiida.common.datastructures import CalcInfo
from aiida.common.folders import Folder
from ase.data import chemical_symbols

from ..data.mlff_model import MlffModel
from ..data.training_set import TrainingSet
from ..drivers import driver_path
from ..environments.engines import ENGINES
from .driver import DriverCalculation

__all__ = ('PRETRAINED_MODELS', 'EvaluateCalculation', 'ModelDriverCalculation', 'pretrained_model')

#: Extra of an ``InstalledCode`` naming its engine environment (set by ``register_codes``).
ENGINE_EXTRA = 'mlffdiff_engine'

#: Elements CHGNet 0.3.0 accepts: its atom embedding has 94 rows, Z = 1 (H) … 94 (Pu) (checked with chgnet 0.4.2:
#: ``CHGNet.load(model_name='0.3.0').atom_embedding`` is ``Embedding(94, 64)``). Its training set (MPtrj) has
#: few or no examples of the radioactive elements Po–Ra: results for them are not to be trusted.
CHGNET_SPECIES = tuple(chemical_symbols[1:95])
#: Elements of SevenNet-0 (11 July 2024): Z = 1 … 94 without Po, At, Rn, Fr, Ra (84–88), 89 elements (checked with
#: sevenn 0.13.0: ``SevenNetCalculator('7net-0').type_map``).
SEVENNET_0_SPECIES = tuple(symbol for z, symbol in enumerate(chemical_symbols[:95]) if z >= 1 and not 84 <= z <= 88)


def _pinned_version(distribution: str) -> str:
    """The version the pretrained environment pins for ``distribution`` (e.g. chgnet → '0.4.2')."""
    for requirement in ENGINES['pretrained'].requirements():
        match = re.fullmatch(rf'{re.escape(distribution)}==([\w.]+)', requirement)
        if match:
            return match.group(1)
    return ''


_MPTRJ = 'MPtrj (Materials Project relaxations, PBE/PBE+U)'
_CHGNET_PAPER = 'B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023); chgnet, Modified BSD licence'
_SEVENNET_PAPER = 'Y. Park et al., J. Chem. Theory Comput. 20, 4857 (2024); sevenn, MIT licence'


def _chgnet(version: str, weights: str, sha256: str, cutoff_A: float, reference: str) -> dict:
    return {
        'architecture': 'chgnet', 'species': CHGNET_SPECIES, 'cutoff_A': cutoff_A, 'layers': 4,
        'package_model': version, 'modal': None, 'package_file': f'chgnet/pretrained/{version}/{weights}',
        'sha256': sha256, 'engine_version': _pinned_version('chgnet'), 'reference': reference,
        'source': f'CHGNet {version}, trained on {reference}; {_CHGNET_PAPER}',
    }  # fmt: skip


def _sevennet(name: str, folder: str, weights: str, sha256: str, reference: str, modal: str | None = None) -> dict:
    return {
        'architecture': 'sevenn', 'species': SEVENNET_0_SPECIES, 'cutoff_A': 5.0, 'layers': 5,
        'package_model': name, 'modal': modal, 'package_file': f'sevenn/pretrained_potentials/{folder}/{weights}',
        'sha256': sha256, 'engine_version': _pinned_version('sevenn'), 'reference': reference,
        'source': f'SevenNet {name}{f" ({modal} head)" if modal else ""}, trained on {reference}; {_SEVENNET_PAPER}',
    }  # fmt: skip


#: Pretrained universal models whose weights ship inside their PyPI wheel (chgnet 0.4.2, sevenn 0.13.0), by model
#: name: architecture, species, cutoff (Å), message-passing layers, the package's own name (``package_model``), the
#: fidelity head (``modal``), the weights file in the wheel and its sha256 (checked by the driver before each run),
#: the reference data and the source. CHGNet: atom graph 6 Å (0.2.0: 5 Å), bond graph 3 Å, 4 atom-convolution
#: layers, 94 elements; SevenNet: 5 Å, 5 convolution layers, 89 elements (all read from the loaded models with
#: chgnet 0.4.2 and sevenn 0.13.0; sha256 of the files in those wheels). docs/universal_models.md lists them.
PRETRAINED_MODELS = {
    'chgnet-0.3.0': _chgnet(
        '0.3.0',
        'chgnet_0.3.0_e29f68s314m37.pth.tar',
        'd14ab7c0f093efe64b60a7bcd540bca10e74fb7f46c86108a079af60524659d1',
        6.0,
        _MPTRJ,
    ),
    'chgnet-0.2.0': _chgnet(
        '0.2.0',
        'chgnet_0.2.0_e30f77s348m32.pth.tar',
        'ef624f78b6db9d315b4ef256f1bb3207449924191b91720dc17d3f60c5df980e',
        5.0,
        _MPTRJ,
    ),
    'chgnet-r2scan': _chgnet(
        'r2scan',
        'chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar',
        '8eba3db0f35a2788bb3ae22885ad340591e27996f213c6643af522a633b50dad',
        6.0,
        'MP r2SCAN (transfer learning from CHGNet 0.3.0)',
    ),
    '7net-0': _sevennet(
        '7net-0',
        'SevenNet_0__11Jul2024',
        'checkpoint_sevennet_0.pth',
        '7052cb42b7b3be42b40b97fa0d21077a48c54b5548948fc4dcf346629f813c36',
        _MPTRJ,
    ),
    '7net-0_22may2024': _sevennet(
        '7net-0_22may2024',
        'SevenNet_0__22May2024',
        'checkpoint_sevennet_0.pth',
        '5d389fafd512e6ae2830d74d0b66ffc49a55d3832653ff8e7bf7f1343013c1d1',
        _MPTRJ,
    ),
    '7net-l3i5': _sevennet(
        '7net-l3i5',
        'SevenNet_l3i5',
        'checkpoint_l3i5.pth',
        'a7ff190d41efe5b8317a03d20a468e4036a1a3e64e0b14fdbab64ac3f4bfc09d',
        _MPTRJ,
    ),
    '7net-mf-0-pbe': _sevennet(
        '7net-mf-0',
        'SevenNet_MF_0',
        'checkpoint_sevennet_mf_0.pth',
        '81791329b37d445f46b531578c182c41792d98c7814222c9e5dde276402225fd',
        'MPtrj (PBE/PBE+U) and MP r2SCAN',
        'PBE',
    ),
    '7net-mf-0-r2scan': _sevennet(
        '7net-mf-0',
        'SevenNet_MF_0',
        'checkpoint_sevennet_mf_0.pth',
        '81791329b37d445f46b531578c182c41792d98c7814222c9e5dde276402225fd',
        'MPtrj (PBE/PBE+U) and MP r2SCAN',
        'R2SCAN',
    ),
}


def pretrained_model(name: str) -> MlffModel:
    """The stored :class:`MlffModel` of a pretrained universal model (a key of :data:`PRETRAINED_MODELS`).

    Get-or-create: an existing pretrained node with this model name and architecture is returned (the oldest one),
    otherwise a new one is stored, so that every evaluation of the same model points at the same node.

    :raises ValueError: an unknown model name.
    """
    if name not in PRETRAINED_MODELS:
        raise ValueError(f'unknown pretrained model {name!r}: choose one of {", ".join(PRETRAINED_MODELS)}.')
    entry = PRETRAINED_MODELS[name]
    query = orm.QueryBuilder().append(
        MlffModel,
        filters={
            'attributes.pretrained': True,
            'attributes.model_name': name,
            'attributes.architecture': entry['architecture'],
            'attributes.sha256': entry['sha256'],  # nodes made before the weights were recorded are not reused
        },
        project='*',
    )
    query.order_by({MlffModel: {'id': 'asc'}}).limit(1)
    existing = query.first(flat=True)
    if existing is not None:
        return existing
    return MlffModel.pretrained_model(
        name,
        architecture=entry['architecture'],
        species=list(entry['species']),
        cutoff_A=entry['cutoff_A'],
        engine='pretrained',
        engine_version=entry['engine_version'],
        package_model=entry['package_model'],
        modal=entry['modal'],
        package_file=entry['package_file'],
        weights_sha256=entry['sha256'],
        source=entry['source'],
    ).store()


def validate_inputs(value, _=None) -> str | None:
    """Submission-time checks: species covered, code and model of the same engine, model file intact."""
    model, dataset, code = value.get('model'), value.get('dataset'), value.get('code')
    if model is None or dataset is None:
        return None  # the ports themselves report what is missing
    try:
        model.check_species(dataset.species)
    except ValueError as exception:
        return f'the model cannot evaluate this dataset: {exception}'
    return model_code_problem(model, code)


def model_code_problem(model: MlffModel, code) -> str | None:
    """Why ``model`` cannot run with ``code`` through ASE (wrong nequip target, engine, checksum), or None."""
    if model.architecture == 'nequip' and model.target not in (None, 'ase'):
        return (
            f'{model.describe()} was compiled for the {model.target!r} target; ASE needs a model compiled with '
            '`nequip-compile --target ase`.'
        )
    engine = code.base.extras.get(ENGINE_EXTRA, None) if code is not None else None
    if engine:
        try:
            model.require_engine(engine)
        except ValueError as exception:
            return f'code {code.full_label} runs the {engine!r} environment: {exception}'
    try:
        model.verify_checksum()
    except ValueError as exception:
        return str(exception)
    return None


def pretrained_arguments(model: MlffModel) -> list[str]:
    """The driver's options that name a pretrained model: its package name, fidelity head and weights check."""
    arguments = ['--pretrained', model.package_model or model.model_name]
    if model.modal:
        arguments += ['--modal', model.modal]
    if model.package_file and model.sha256:
        arguments += ['--weights', model.package_file, '--weights-sha256', model.sha256]
    return arguments


class ModelDriverCalculation(DriverCalculation):
    """What EvaluateCalculation and PredictCalculation share: the model input, the thread count, the model's own
    engine environment and the command line of the ``evaluate_model.py`` driver on the configurations file."""

    _DRIVER = 'evaluate_model.py'
    _PREDICTIONS = _OUTPUT = 'predictions.npz'
    _INFO = 'evaluate.json'
    _STDOUT = 'evaluate.out'
    _STDERR = 'evaluate.err'
    _DATASET = _INPUT = ''  # the configurations file of the subclass

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('model', valid_type=MlffModel, help='The model (a file-based or a pretrained one).')
        spec.input(
            'metadata.options.num_threads',
            valid_type=int,
            default=1,
            help='Threads of the engine process (torch, OpenMP, BLAS); one process per core is fastest on CPU.',
        )
        spec.output('run_info', valid_type=orm.Dict, help='Versions, thread counts and timings (s) of the run.')
        # Non-finite predictions (340) are a deterministic property of the model and the data and stay cacheable.
        spec.exit_code(
            330,
            'ERROR_INCONSISTENT_OUTPUT',
            invalidates_cache=True,
            message='The predictions do not match the configurations: {message}',
        )
        spec.exit_code(
            340,
            'ERROR_NON_FINITE_PREDICTIONS',
            message='The model predicted NaN or infinite values: {message}',
        )

    def environment_name(self) -> str:
        """The model's own engine environment."""
        return self.inputs.model.engine

    def cmdline(self) -> list[str]:
        """Arguments of the engine python: the driver and its options."""
        model = self.inputs.model
        source = pretrained_arguments(model) if model.pretrained else ['--model', model.filename]
        return [
            self._DRIVER,
            '--architecture',
            model.architecture,
            *source,
            '--data',
            self._DATASET,
            '--output',
            self._PREDICTIONS,
            '--info',
            self._INFO,
            '--threads',
            str(self.inputs.metadata.options.num_threads),
        ]


class EvaluateCalculation(ModelDriverCalculation):
    """Evaluate an MLFF model on every configuration of a training set (energies eV, forces eV/Å, stress eV/Å³)."""

    _DATASET = _INPUT = 'dataset.extxyz'
    _PARSER = 'mlffdiff.evaluate'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'dataset',
            valid_type=TrainingSet,
            help='Configurations with reference energies (eV), forces (eV/Å) and, optionally, stresses (eV/Å³).',
        )
        spec.inputs.validator = validate_inputs

        spec.output('metrics', valid_type=orm.Dict, help='Error metrics, units in the keys (meV/atom, meV/Å, …).')
        spec.output(
            'parity',
            valid_type=orm.ArrayData,
            help='Reference and predicted energies per atom (eV) and force components (eV/Å), and stresses.',
        )
        spec.default_output_node = 'metrics'
        # An unreadable dataset or inconsistent output is not a result either (300 and 310: DriverCalculation).
        spec.exit_code(
            320,
            'ERROR_EVALUATION_FAILED',
            invalidates_cache=True,
            message='The dataset could not be read or evaluated: {message}',
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the driver, copy the model file(s) and the dataset from the repository, and set the command line."""
        dataset = self.inputs.dataset
        folder.insert_path(str(driver_path('evaluate_model')), self._DRIVER)

        local_copy_list = [(dataset.uuid, TrainingSet.FILENAME, self._DATASET), *self.model_copy_list()]
        return self.driver_calcinfo(self.cmdline(), local_copy_list, threads=self.inputs.metadata.options.num_threads)
