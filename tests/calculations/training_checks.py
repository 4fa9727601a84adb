"""What every finished TrainCalculation must hold, checked on the ones the training chain tests run (one training
per architecture for the CalcJob and the chain: the engines are the expensive part)."""

from __future__ import annotations

import math

import numpy as np
from aiida import orm

from aiida_mlffdiff.calculations.writers import get_writer
from aiida_mlffdiff.data.mlff_model import MlffModel, file_sha256


def check_trained(node: orm.CalcJobNode, architecture: str) -> None:
    """The model node (architecture, species, cutoff, engine, file checksum), the validation metrics and the
    learning curve of a finished TrainCalculation ``node`` trained with the fast protocol."""
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    training, validation = node.inputs.training_set, node.inputs.validation_set
    model = node.outputs.model
    writer = get_writer(architecture)
    assert isinstance(model, MlffModel)
    assert model.architecture == architecture
    assert model.species == training.species
    assert model.cutoff_A == node.inputs.parameters['cutoff_A']
    assert model.engine == architecture
    assert model.engine_version
    assert model.filename == writer.model_filename
    with node.outputs.retrieved.base.repository.as_path(writer.model_filename) as path:
        assert model.sha256 == file_sha256(path)
    if architecture == 'nequip':
        assert model.target == 'ase'
        assert model.torch_version.startswith('2.13')

    metrics = node.outputs.validation_metrics.get_dict()
    assert math.isfinite(metrics['energy_rmse_meV_atom'])
    assert math.isfinite(metrics['forces_rmse_meV_A'])
    assert metrics['n_training_configurations'] == training.n_structures
    assert metrics['n_validation_configurations'] == validation.n_structures
    curve = node.outputs.learning_curve
    x_name = curve.base.attributes.get('x_axis')
    assert x_name == ('step' if architecture == 'deepmd' else 'epoch')
    assert metrics['n_steps' if architecture == 'deepmd' else 'n_epochs'] == curve.get_array(x_name)[-1]
    assert np.isfinite(curve.get_array('validation_forces_rmse_meV_A')).all()
