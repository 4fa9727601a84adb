"""NequIP 0.19.1: a Hydra config for ``nequip-train`` and the ``nequip-compile`` (AOTInductor) command.

``nequip-train -cd . -cn config.yaml``: the config directory is given with ``--config-dir`` (``-cd``, relative to the
working directory) because Hydra resolves ``--config-path`` (``-cp``) relative to nequip's own package, not the
working directory. Hydra's output directory is the job folder itself (``hydra.run.dir: .``), so checkpoints and the
learning curve land next to the inputs. The compiled ``.pt2`` only loads under the torch it was compiled with, so
the compile step runs in the training job, in the environment that will run the MD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import yaml
from ase import Atoms

from aiida_mlffdiff.data.converters import REF_ENERGY_KEY, REF_FORCES_KEY, REF_STRESS_KEY, write_extxyz
from aiida_mlffdiff.parameters import Option, one_of

from .base import Command, JobFiles, TrainingWriter, common_options, positive_int, symbol_list

CONFIG = 'config.yaml'
CHECKPOINT = 'best.ckpt'
#: Directory of Lightning's CSVLogger (its ``metrics.csv`` is the learning curve).
CSV_DIR = 'csv_log'
#: The metric that picks the best checkpoint and drives the learning-rate schedule.
MONITOR = 'val0_epoch/weighted_sum'


class _PlainDumper(yaml.SafeDumper):
    """A YAML dumper that writes repeated lists in full instead of as anchors and aliases (easier to read)."""

    def ignore_aliases(self, data) -> bool:
        return True


def _fraction_check(value) -> str | None:
    return None if 0 < value < 1 else 'must be between 0 and 1'


class NequipWriter(TrainingWriter):
    """NequIP: ``nequip-train`` (Hydra config ``config.yaml``) then ``nequip-compile`` to ``model.nequip.pt2``.

    ``check_val_every_n_epoch`` stays 1: validating less often together with checkpointing produced corrupt EMA
    checkpoints (docs/engine_facts.md). The best checkpoint (lowest validation weighted sum, EMA weights) is compiled.
    """

    architecture = 'nequip'
    engine = 'nequip'
    model_filename = 'model.nequip.pt2'
    needs_compile_code = True
    executables = 'nequip-train and nequip-compile'
    schema: ClassVar[dict[str, Option]] = {
        **common_options(
            cutoff_A=5.0,
            learning_rate=0.01,
            batch_size=5,
            energy_weight=1.0,
            forces_weight=1.0,
            stress_weight=1.0,
            dtype='float64',
        ),
        'max_epochs': Option(int, 50, 'number of training epochs', positive_int),
        'valid_batch_size': Option(int, 10, 'configurations per validation batch', positive_int),
        'l_max': Option(int, 1, 'highest rotation order ℓ of the features (1 is a good default)', positive_int),
        'parity': Option(bool, True, 'include features of odd mirror parity'),
        'num_layers': Option(int, 3, 'number of interaction (convolution) layers', positive_int),
        'num_features': Option(int, 32, 'multiplicity of the features', positive_int),
        'radial_mlp_depth': Option(int, 2, 'hidden layers of the radial MLP', positive_int),
        'radial_mlp_width': Option(int, 64, 'width of the radial MLP', positive_int),
        'num_bessels': Option(int, 8, 'number of Bessel radial basis functions', positive_int),
        'polynomial_cutoff_p': Option(int, 6, 'exponent p of the polynomial cutoff envelope', positive_int),
        'ema_decay': Option(float, 0.999, 'decay of the exponential moving average of the weights', _fraction_check),
        'lr_factor': Option(
            float, 0.5, 'factor applied to the learning rate when the validation loss plateaus', _fraction_check
        ),
        'lr_patience': Option(int, 10, 'epochs without improvement before the learning rate drops', positive_int),
        'compile_target': Option(
            str,
            'ase',
            'nequip-compile target: ase (ASE calculator), batch (torch-sim) or pair_nequip (LAMMPS)',
            one_of('ase', 'batch', 'pair_nequip'),
        ),
        'species': Option(
            (list, type(None)), None, 'chemical symbols of the model (None: the training-set species)', symbol_list
        ),
    }

    def target(self, values: Mapping[str, Any]) -> str | None:
        """The nequip-compile target the model was compiled for."""
        return values['compile_target']

    def config(
        self, values: Mapping[str, Any], *, species: Sequence[str], seed: int, use_stress: bool
    ) -> dict[str, Any]:
        """The Hydra config as a dictionary (plain values; only nequip's own resolvers are left as ``${...}``)."""
        species = list(species)
        cutoff = float(values['cutoff_A'])
        loss_coeffs = {'total_energy': values['energy_weight'], 'forces': values['forces_weight']}
        metric_coeffs: dict[str, float | None] = {'per_atom_energy_rmse': 1.0, 'forces_rmse': 1.0}
        key_mapping = {REF_ENERGY_KEY: 'total_energy', REF_FORCES_KEY: 'forces'}
        if use_stress:
            loss_coeffs['stress'] = values['stress_weight']
            metric_coeffs['stress_rmse'] = 1.0
            key_mapping[REF_STRESS_KEY] = 'stress'
            loss, metrics = 'nequip.train.EnergyForceStressLoss', 'nequip.train.EnergyForceStressMetrics'
        else:
            loss, metrics = 'nequip.train.EnergyForceLoss', 'nequip.train.EnergyForceMetrics'
        return {
            'run': ['train'],
            'seed': seed,
            'hydra': {'run': {'dir': '.'}, 'output_subdir': None},
            'data': {
                '_target_': 'nequip.data.datamodule.ASEDataModule',
                'seed': seed,
                'train_file_path': 'train.xyz',
                'val_file_path': 'valid.xyz',
                'ase_args': {'format': 'extxyz'},
                'key_mapping': key_mapping,
                'transforms': [
                    {
                        '_target_': 'nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper',
                        'model_type_names': species,
                        'chemical_species_to_atom_type_map': {s: s for s in species},
                    },
                    {'_target_': 'nequip.data.transforms.NeighborListTransform', 'r_max': cutoff},
                ],
                'train_dataloader': {
                    '_target_': 'torch.utils.data.DataLoader',
                    'batch_size': values['batch_size'],
                    'shuffle': True,
                    'num_workers': 0,
                },
                'val_dataloader': {
                    '_target_': 'torch.utils.data.DataLoader',
                    'batch_size': values['valid_batch_size'],
                    'num_workers': 0,
                },
                'stats_manager': {'_target_': 'nequip.data.CommonDataStatisticsManager', 'type_names': species},
            },
            'trainer': {
                '_target_': 'lightning.Trainer',
                'accelerator': 'cpu',
                'devices': 1,
                'max_epochs': values['max_epochs'],
                'check_val_every_n_epoch': 1,
                'log_every_n_steps': 1,
                'enable_progress_bar': False,
                'logger': {
                    '_target_': 'lightning.pytorch.loggers.CSVLogger',
                    'save_dir': '.',
                    'name': '',
                    'version': CSV_DIR,
                },
                'callbacks': [
                    {
                        '_target_': 'lightning.pytorch.callbacks.ModelCheckpoint',
                        'monitor': MONITOR,
                        'dirpath': '.',
                        'filename': CHECKPOINT.removesuffix('.ckpt'),
                        'save_top_k': 1,
                        'save_last': False,
                    },
                    {'_target_': 'lightning.pytorch.callbacks.LearningRateMonitor', 'logging_interval': 'epoch'},
                ],
            },
            'training_module': {
                '_target_': 'nequip.train.EMALightningModule',
                'ema_decay': values['ema_decay'],
                'loss': {'_target_': loss, 'per_atom_energy': True, 'coeffs': loss_coeffs},
                'val_metrics': {'_target_': metrics, 'coeffs': metric_coeffs},
                'optimizer': {'_target_': 'torch.optim.Adam', 'lr': values['learning_rate']},
                'lr_scheduler': {
                    'scheduler': {
                        '_target_': 'torch.optim.lr_scheduler.ReduceLROnPlateau',
                        'factor': values['lr_factor'],
                        'patience': values['lr_patience'],
                    },
                    'monitor': MONITOR,
                    'interval': 'epoch',
                    'frequency': 1,
                },
                'model': {
                    '_target_': 'nequip.model.NequIPGNNModel',
                    'seed': seed,
                    'model_dtype': values['dtype'],
                    'type_names': species,
                    'r_max': cutoff,
                    'l_max': values['l_max'],
                    'parity': values['parity'],
                    'num_layers': values['num_layers'],
                    'num_features': values['num_features'],
                    'radial_mlp_depth': values['radial_mlp_depth'],
                    'radial_mlp_width': values['radial_mlp_width'],
                    'num_bessels': values['num_bessels'],
                    'polynomial_cutoff_p': values['polynomial_cutoff_p'],
                    'avg_num_neighbors': '${training_data_stats:num_neighbors_mean}',
                    'per_type_energy_shifts': '${training_data_stats:per_atom_energy_mean}',
                    'per_type_energy_scales': '${training_data_stats:forces_rms}',
                },
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
        """Write ``train.xyz``, ``valid.xyz`` and ``config.yaml``; train, then compile the best checkpoint."""
        directory = Path(directory)
        write_extxyz(training, directory / 'train.xyz')
        write_extxyz(validation, directory / 'valid.xyz')
        config = self.config(values, species=species, seed=seed, use_stress=use_stress)
        (directory / CONFIG).write_text(yaml.dump(config, Dumper=_PlainDumper, sort_keys=False), encoding='utf-8')
        compile_arguments = (
            CHECKPOINT,
            self.model_filename,
            '--mode',
            'aotinductor',
            '--device',
            'cpu',
            '--target',
            values['compile_target'],
        )
        return JobFiles(
            commands=(
                Command('code', ('-cd', '.', '-cn', CONFIG), 'nequip-train.out', 'nequip-train.err'),
                Command('compile_code', compile_arguments, 'nequip-compile.out', 'nequip-compile.err'),
            ),
            retrieve=(
                'nequip-train.out',
                'nequip-train.err',
                'nequip-compile.out',
                'nequip-compile.err',
                f'{CSV_DIR}/metrics.csv',
                self.model_filename,
            ),
            written=('train.xyz', 'valid.xyz', CONFIG),
        )
