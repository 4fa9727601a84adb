"""DeePMD-kit 3.2 (PyTorch backend): ``input.json`` with an se_e2_a descriptor and npy systems; train, freeze, test.

The job runs the same ``dp`` code three times: ``dp --pt train input.json``, ``dp --pt freeze -o model.pth``
(TorchScript) and ``dp --pt test`` of the frozen model on the whole validation set (the learning curve of
``dp train`` evaluates only a few validation batches; the final validation errors come from ``dp test``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ase import Atoms

from aiida_mlffdiff.data.converters import write_deepmd
from aiida_mlffdiff.parameters import Option, one_of

from .base import Command, JobFiles, TrainingWriter, int_list, non_negative, positive_int, positive_number, symbol_list
from .base import common_options as _common

INPUT = 'input.json'
LCURVE = 'lcurve.out'
TRAIN_DIR = 'data/train'
VALID_DIR = 'data/valid'


def _sel_check(value) -> str | None:
    if isinstance(value, str):
        return None if value == 'auto' or value.startswith('auto:') else "must be 'auto', 'auto:FACTOR', int or list"
    if isinstance(value, int):
        return None if value > 0 else 'must be positive'
    return int_list(value)


def _batch_check(value) -> str | None:
    if isinstance(value, str):
        return None if value == 'auto' or value.startswith('auto:') else "must be 'auto', 'auto:N' or an integer"
    return positive_int(value)


def _common_options() -> dict[str, Option]:
    options = _common(
        cutoff_A=5.0,
        learning_rate=1e-3,
        batch_size=1,
        energy_weight=1.0,
        forces_weight=1.0,
        stress_weight=1.0,
        dtype='float64',
    )
    # DeePMD's loss prefactors change from a start to a limit value with the learning rate: the common weights are
    # the limit values; the start values are separate options below.
    options['batch_size'] = Option(
        (int, str), 'auto', "frames per batch, or 'auto' (≥ 32 atoms per batch)", _batch_check
    )
    options['energy_weight'] = Option(float, 1.0, 'final (limit) prefactor of the energy loss', non_negative)
    options['forces_weight'] = Option(float, 1.0, 'final (limit) prefactor of the force loss', non_negative)
    options['stress_weight'] = Option(
        float, 1.0, 'final (limit) prefactor of the virial loss (0: no stress training)', non_negative
    )
    return options


class DeepmdWriter(TrainingWriter):
    """DeePMD-kit: ``dp --pt train input.json`` → ``dp --pt freeze -o model.pth`` → ``dp --pt test``.

    The type map is the training-set species (sorted) unless ``type_map`` gives it explicitly; it must then cover
    every species of the training and validation sets.
    """

    architecture = 'deepmd'
    engine = 'deepmd'
    model_filename = 'model.pth'
    species_option = 'type_map'
    executables = 'dp'
    schema: ClassVar[dict[str, Option]] = {
        **_common_options(),
        'num_steps': Option(int, 1000, 'number of training steps (batches)', positive_int),
        'stop_learning_rate': Option(
            float, 1e-6, 'learning rate reached at the last step (exponential decay)', positive_number
        ),
        'decay_steps': Option(int, 100, 'steps between two learning-rate decays', positive_int),
        'cutoff_smooth_A': Option(float, 0.5, 'where the smooth switching of the descriptor starts (Å)', non_negative),
        'sel': Option(
            (str, int, list),
            'auto',
            "maximum neighbours per type within the cutoff, or 'auto' (from the data)",
            _sel_check,
        ),
        'descriptor': Option(
            str,
            'se_e2_a',
            "'se_e2_a' (one embedding net per type pair) or 'se_atten_v2' (one net plus a type embedding; with "
            'attention_layers 0 it is se_e2_a with shared weights: measured 4x faster to train and stable in MD where '
            'se_e2_a ran away on 22 configurations; docs/tutorial.md)',
            one_of('se_e2_a', 'se_atten_v2'),
        ),
        'attention_layers': Option(int, 0, 'se_atten_v2 only: gated self-attention layers (0: none)', non_negative),
        'type_embedding_dim': Option(int, 8, 'se_atten_v2 only: length of the type embedding', positive_int),
        'descriptor_neurons': Option(list, [25, 50, 100], 'widths of the embedding net of the descriptor', int_list),
        'axis_neuron': Option(int, 16, 'size of the submatrix of the embedding (axis neurons)', positive_int),
        'fitting_neurons': Option(list, [240, 240, 240], 'widths of the fitting net', int_list),
        'start_energy_weight': Option(float, 0.02, 'initial prefactor of the energy loss', non_negative),
        'start_forces_weight': Option(float, 1000.0, 'initial prefactor of the force loss', non_negative),
        'start_stress_weight': Option(float, 0.02, 'initial prefactor of the virial loss', non_negative),
        'disp_freq': Option(int, 100, 'steps between two learning-curve lines (lcurve.out)', positive_int),
        'save_freq': Option(int, 1000, 'steps between two checkpoints', positive_int),
        'type_map': Option(
            (list, type(None)),
            None,
            'chemical symbols in the order of the model types (None: the training-set species, sorted)',
            symbol_list,
        ),
    }

    def check(self, values: dict[str, Any]) -> list[str]:
        """The final learning rate must not exceed the initial one; the smoothing must start inside the cutoff."""
        problems = []
        if values['stop_learning_rate'] > values['learning_rate']:
            problems.append(
                f'stop_learning_rate ({values["stop_learning_rate"]}) exceeds learning_rate ({values["learning_rate"]})'
            )
        if values['cutoff_smooth_A'] >= values['cutoff_A']:
            problems.append(f'cutoff_smooth_A ({values["cutoff_smooth_A"]} Å) must be below cutoff_A')
        if values['descriptor'] == 'se_e2_a' and values['attention_layers']:
            problems.append("attention_layers needs descriptor 'se_atten_v2' (se_e2_a has no attention)")
        return problems

    @staticmethod
    def _attention(values: Mapping[str, Any]) -> dict[str, Any]:
        """The se_atten_v2 keys (type embedding, attention depth); nothing for se_e2_a."""
        if values['descriptor'] != 'se_atten_v2':
            return {}
        return {'attn_layer': values['attention_layers'], 'tebd_dim': values['type_embedding_dim']}

    def input_json(
        self,
        values: Mapping[str, Any],
        *,
        type_map: Sequence[str],
        training_systems: Sequence[str],
        validation_systems: Sequence[str],
        seed: int,
        use_stress: bool,
    ) -> dict[str, Any]:
        """The DeePMD input as a dictionary (systems as paths relative to the job folder)."""
        precision = values['dtype']
        return {
            'model': {
                'type_map': list(type_map),
                'descriptor': {
                    'type': values['descriptor'],
                    **self._attention(values),
                    'sel': values['sel'],
                    'rcut_smth': float(values['cutoff_smooth_A']),
                    'rcut': float(values['cutoff_A']),
                    'neuron': list(values['descriptor_neurons']),
                    'resnet_dt': False,
                    'axis_neuron': values['axis_neuron'],
                    'precision': precision,
                    'seed': seed,
                },
                'fitting_net': {
                    'neuron': list(values['fitting_neurons']),
                    'resnet_dt': True,
                    'precision': precision,
                    'seed': seed,
                },
            },
            'learning_rate': {
                'type': 'exp',
                'start_lr': float(values['learning_rate']),
                'stop_lr': float(values['stop_learning_rate']),
                'decay_steps': values['decay_steps'],
            },
            'loss': {
                'type': 'ener',
                'start_pref_e': float(values['start_energy_weight']),
                'limit_pref_e': float(values['energy_weight']),
                'start_pref_f': float(values['start_forces_weight']),
                'limit_pref_f': float(values['forces_weight']),
                'start_pref_v': float(values['start_stress_weight']) if use_stress else 0.0,
                'limit_pref_v': float(values['stress_weight']) if use_stress else 0.0,
            },
            'training': {
                'training_data': {'systems': list(training_systems), 'batch_size': values['batch_size']},
                'validation_data': {'systems': list(validation_systems), 'batch_size': 'auto', 'numb_btch': 1},
                'numb_steps': values['num_steps'],
                'seed': seed,
                'disp_file': LCURVE,
                'disp_freq': values['disp_freq'],
                'save_freq': values['save_freq'],
            },
        }

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
        """Write the npy systems under ``data/`` and ``input.json``; train, freeze and test on the validation set."""
        directory = Path(directory)
        training_systems = [
            p.relative_to(directory).as_posix() for p in write_deepmd(training, directory / TRAIN_DIR, species)
        ]
        validation_systems = [
            p.relative_to(directory).as_posix() for p in write_deepmd(validation, directory / VALID_DIR, species)
        ]
        content = self.input_json(
            values,
            type_map=species,
            training_systems=sorted(training_systems),
            validation_systems=sorted(validation_systems),
            seed=seed,
            use_stress=use_stress,
        )
        (directory / INPUT).write_text(json.dumps(content, indent=2) + '\n', encoding='utf-8')
        data_files = sorted(p for p in (directory / 'data').rglob('*') if p.is_file())
        written = [INPUT, *(p.relative_to(directory).as_posix() for p in data_files)]
        return JobFiles(
            commands=(
                Command('code', ('--pt', 'train', INPUT), 'dp-train.out', 'dp-train.err'),
                Command('code', ('--pt', 'freeze', '-o', self.model_filename), 'dp-freeze.out', 'dp-freeze.err'),
                Command(
                    'code',
                    ('--pt', 'test', '-m', self.model_filename, '--valid-data', INPUT, '-n', '0'),
                    'dp-test.out',
                    'dp-test.err',
                ),
            ),
            retrieve=(
                'dp-train.out',
                'dp-train.err',
                'dp-freeze.out',
                'dp-freeze.err',
                'dp-test.out',
                'dp-test.err',
                LCURVE,
                self.model_filename,
            ),
            written=tuple(written),
        )
