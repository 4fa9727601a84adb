"""MACE (mace-torch 0.3.16): extxyz data with REF_ keys and the command line of ``mace_run_train``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ase import Atoms
from ase.data import atomic_numbers

from aiida_mlffdiff.data.converters import REF_ENERGY_KEY, REF_FORCES_KEY, REF_STRESS_KEY, write_extxyz
from aiida_mlffdiff.parameters import Option, one_of

from .base import Command, JobFiles, TrainingWriter, common_options, int_list, positive_int, symbol_list

#: Experiment name passed to ``--name``: MACE writes ``NAME.model`` and ``NAME_compiled.model``.
NAME = 'mlff'


def _e0s_check(value) -> str | None:
    if isinstance(value, str):
        return None if value in ('average', 'estimated') else "must be 'average', 'estimated' or {symbol: eV}"
    if not value or not all(k in atomic_numbers and isinstance(v, int | float) for k, v in value.items()):
        return 'must map chemical symbols to isolated-atom energies (eV)'
    return None


def _max_l_check(value) -> str | None:
    return None if 0 <= value <= 3 else 'must be 0, 1, 2 or 3'


def _fraction_check(value) -> str | None:
    return None if 0 < value < 1 else 'must be between 0 and 1'


class MaceWriter(TrainingWriter):
    """MACE: ``mace_run_train`` on ``train.xyz``/``valid.xyz``; deploys the TorchScript ``mlff_compiled.model``.

    The compiled model is the one to deploy (docs/engine_facts.md: it also loads under e3nn 0.6, the pickled one
    does not).
    Learning curve: ``results/mlff_run-SEED_train.txt`` (JSON lines); final errors: the error table in the log.
    """

    architecture = 'mace'
    engine = 'mace'
    model_filename = f'{NAME}_compiled.model'
    executables = 'mace_run_train'
    schema: ClassVar[dict[str, Option]] = {
        **common_options(
            cutoff_A=5.0,
            learning_rate=0.01,
            batch_size=5,
            energy_weight=1.0,
            forces_weight=100.0,
            stress_weight=1.0,
            dtype='float64',
        ),
        'max_epochs': Option(int, 100, 'number of training epochs', positive_int),
        'valid_batch_size': Option(int, 10, 'configurations per validation batch', positive_int),
        'model': Option(str, 'MACE', 'MACE variant: MACE or ScaleShiftMACE', one_of('MACE', 'ScaleShiftMACE')),
        'num_channels': Option(int, 16, 'channels (multiplicity) of the hidden features', positive_int),
        'max_L': Option(int, 1, 'highest symmetry order L of the messages (0–3)', _max_l_check),
        'max_ell': Option(int, 3, 'highest ℓ of the spherical harmonics of the edges', positive_int),
        'correlation': Option(int, 3, 'correlation (body) order of each product layer', positive_int),
        'num_interactions': Option(int, 2, 'number of message-passing layers', positive_int),
        'num_radial_basis': Option(int, 8, 'number of Bessel radial basis functions', positive_int),
        'num_cutoff_basis': Option(int, 5, 'order p of the polynomial cutoff envelope', positive_int),
        'radial_mlp': Option(list, [64, 64, 64], 'hidden widths of the radial MLP, e.g. [64, 64, 64]', int_list),
        'e0s': Option(
            (str, dict),
            'average',
            "isolated-atom energies: 'average' (least-squares fit to the training set), or {symbol: eV}",
            _e0s_check,
        ),
        'ema': Option(bool, True, 'keep an exponential moving average of the weights'),
        'ema_decay': Option(float, 0.99, 'decay of the weight moving average', _fraction_check),
        'scheduler_patience': Option(int, 5, 'epochs without improvement before the learning rate drops', positive_int),
        'patience': Option(int, 2048, 'epochs without improvement before training stops early', positive_int),
        'clip_grad': Option((float, type(None)), 10.0, 'gradient-norm clipping threshold (None: no clipping)'),
        'species': Option(
            (list, type(None)), None, 'chemical symbols of the model (None: the training-set species)', symbol_list
        ),
    }

    def min_training_configurations(self, values: Mapping[str, Any]) -> tuple[int, str]:
        """MACE drops an incomplete last batch: fewer configurations than ``batch_size`` leave no batch at all."""
        size = values['batch_size']
        return size, f'batch_size {size} (MACE drops an incomplete batch: it would train on nothing)'

    def write(
        self,
        directory: Path,
        training: Sequence[Atoms],
        validation: Sequence[Atoms],
        values: Mapping[str, Any],
        *,
        species: Sequence[str],
        seed: int,
        use_stress: bool,
    ) -> JobFiles:
        """Write ``train.xyz`` and ``valid.xyz`` and the ``mace_run_train`` command line (all options explicit)."""
        directory = Path(directory)
        write_extxyz(training, directory / 'train.xyz')
        write_extxyz(validation, directory / 'valid.xyz')
        numbers = sorted(atomic_numbers[symbol] for symbol in species)
        e0s = values['e0s']
        if isinstance(e0s, dict):
            energies = sorted((atomic_numbers[symbol], float(energy)) for symbol, energy in e0s.items())
            e0s = '{' + ', '.join(f'{number}: {energy!r}' for number, energy in energies) + '}'
        arguments = {
            '--name': NAME,
            '--seed': str(seed),
            '--device': 'cpu',
            '--default_dtype': values['dtype'],
            '--train_file': 'train.xyz',
            '--valid_file': 'valid.xyz',
            '--energy_key': REF_ENERGY_KEY,
            '--forces_key': REF_FORCES_KEY,
            '--stress_key': REF_STRESS_KEY,
            '--atomic_numbers': str(numbers),
            '--E0s': e0s,
            '--model': values['model'],
            '--r_max': repr(float(values['cutoff_A'])),
            '--num_channels': str(values['num_channels']),
            '--max_L': str(values['max_L']),
            '--max_ell': str(values['max_ell']),
            '--correlation': str(values['correlation']),
            '--num_interactions': str(values['num_interactions']),
            '--num_radial_basis': str(values['num_radial_basis']),
            '--num_cutoff_basis': str(values['num_cutoff_basis']),
            '--radial_MLP': str(list(values['radial_mlp'])),
            '--batch_size': str(values['batch_size']),
            '--valid_batch_size': str(values['valid_batch_size']),
            '--lr': repr(float(values['learning_rate'])),
            '--max_num_epochs': str(values['max_epochs']),
            '--patience': str(values['patience']),
            '--scheduler_patience': str(values['scheduler_patience']),
            '--energy_weight': repr(float(values['energy_weight'])),
            '--forces_weight': repr(float(values['forces_weight'])),
            '--loss': 'stress' if use_stress else 'weighted',
            '--compute_stress': str(use_stress),
            '--error_table': 'PerAtomRMSEstressvirials' if use_stress else 'PerAtomRMSE',
            '--eval_interval': '1',
            '--num_workers': '0',
            '--pin_memory': 'False',
            '--plot': 'False',
            '--save_cpu': None,
        }
        if use_stress:
            arguments['--stress_weight'] = repr(float(values['stress_weight']))
        if values['clip_grad'] is not None:
            arguments['--clip_grad'] = repr(float(values['clip_grad']))
        else:
            arguments['--clip_grad'] = 'None'
        if values['ema']:
            arguments['--ema'] = None
            arguments['--ema_decay'] = repr(float(values['ema_decay']))
        cmdline: list[str] = []
        for flag, value in arguments.items():
            cmdline.append(flag)
            if value is not None:
                cmdline.append(value)
        return JobFiles(
            commands=(Command('code', tuple(cmdline), 'mace.out', 'mace.err'),),
            retrieve=(
                'mace.out',
                'mace.err',
                log_path(seed),
                results_path(seed),
                self.model_filename,
            ),
            written=('train.xyz', 'valid.xyz'),
        )


def log_path(seed: int) -> str:
    """The log MACE writes (relative to the job folder); retrieved flat as its basename."""
    return f'logs/{NAME}_run-{seed}.log'


def results_path(seed: int) -> str:
    """The JSON-lines learning curve MACE writes; retrieved flat as its basename."""
    return f'results/{NAME}_run-{seed}_train.txt'
