"""``TrainParser``: the model, learning curve and validation metrics of a :class:`TrainCalculation`.

Reads only the retrieved files (never the remote folder). The architecture's reader (:mod:`.train_logs`) turns the
logs into a :class:`~.train_logs.TrainingRecord`; this parser decides the exit code and creates the output nodes.
A failed run never produces a ``model`` output; its learning curve, when readable, is still attached (it shows
where the training went wrong).

Exit codes (defined on :class:`~aiida_mlffdiff.calculations.train.TrainCalculation`):

* 300 ``ERROR_MISSING_OUTPUT``: no readable log or learning curve.
* 310 ``ERROR_MODEL_MISSING``: no model file (and no more specific reason found).
* 320 ``ERROR_LOSS_NOT_FINITE``: NaN/inf in the loss or the validation errors (a restart handler lowers the
  learning rate); checked first, because a diverged run may still write a (useless) model file.
* 330 ``ERROR_COMPILE_FAILED``: training completed but nequip-compile / dp freeze did not produce the model.
* 340 ``ERROR_TRAINING_INCOMPLETE``: the engine stopped before the end of training (crash, killed job).
* 350 ``ERROR_INVALID_MODEL``: the model file could not be turned into an MlffModel node.
* 120 ``ERROR_SCHEDULER_OUT_OF_WALLTIME`` (aiida-core's): kept when the scheduler reported it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from aiida import orm
from aiida.common.exceptions import NotExistent
from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_mlffdiff.calculations.writers import get_writer
from aiida_mlffdiff.data.mlff_model import MlffModel

from .train_logs import READERS, TrainingRecord

#: Retrieved files larger than this are not read as text (model binaries).
MAX_TEXT_BYTES = 20 * 2**20


class TrainParser(Parser):
    """Parse the retrieved files of a training job into ``model``, ``learning_curve`` and ``validation_metrics``."""

    def parse(self, **kwargs) -> ExitCode | None:
        """Read the logs, choose the exit code, and create the outputs (the model only on success)."""
        architecture = self.node.inputs.architecture.value
        writer = get_writer(architecture)
        try:
            retrieved = self.retrieved
        except NotExistent:
            return self.exit_codes.ERROR_NO_RETRIEVED_FOLDER
        names = set(retrieved.base.repository.list_object_names())
        texts = self._read_texts(retrieved, names - {writer.model_filename})
        record = READERS[architecture](texts)

        if record.has_curve:
            self.out('learning_curve', self._learning_curve(record))

        if record.not_finite:
            return self._exit('ERROR_LOSS_NOT_FINITE', detail='; '.join(record.not_finite))
        walltime = self.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME
        if self.node.exit_status == walltime.status:
            self.logger.error('the scheduler stopped the job at its walltime; no model is attached.')
            return walltime
        if not record.has_curve and not record.final:
            detail = ', '.join(record.missing) or 'nothing readable'
            if record.errors:
                detail += f' ({"; ".join(record.errors)})'
            return self._exit('ERROR_MISSING_OUTPUT', detail=detail)
        if not record.completed:
            detail = '; '.join(record.errors) or 'the log does not report the end of training'
            return self._exit('ERROR_TRAINING_INCOMPLETE', detail=detail)
        detail = '; '.join(record.errors) or 'no error message in the logs'
        if record.postprocessed is False:
            # nequip-compile may leave a .pt2 behind when its final check fails: only its success message counts
            return self._exit('ERROR_COMPILE_FAILED', detail=detail)
        if writer.model_filename not in names:
            return self._exit('ERROR_MODEL_MISSING', filename=writer.model_filename, detail=detail)
        if not record.final:
            return self._exit('ERROR_MISSING_OUTPUT', detail='no final validation errors in the logs')

        try:
            model = self._model(retrieved, writer, record)
        except (ValueError, OSError) as exception:
            return self._exit('ERROR_INVALID_MODEL', detail=str(exception))
        self.out('model', model)
        self.out('validation_metrics', orm.Dict(self._metrics(record, writer)))
        return None

    def _exit(self, name: str, **kwargs) -> ExitCode:
        exit_code = getattr(self.exit_codes, name).format(**kwargs)
        self.logger.error(exit_code.message)
        return exit_code

    @staticmethod
    def _read_texts(retrieved: orm.FolderData, names: set[str]) -> dict[str, str]:
        """Retrieved top-level files as text (undecodable bytes replaced), skipping large or binary ones."""
        texts = {}
        for name in sorted(names):
            try:
                with retrieved.base.repository.open(name, mode='rb') as handle:
                    content = handle.read(MAX_TEXT_BYTES + 1)
            except (IsADirectoryError, FileNotFoundError, OSError):
                continue
            if len(content) <= MAX_TEXT_BYTES:
                texts[name] = content.decode('utf-8', errors='replace')
        return texts

    @staticmethod
    def _learning_curve(record: TrainingRecord) -> orm.ArrayData:
        """ArrayData: ``epoch`` or ``step`` and the curves (names carry the units)."""
        array = orm.ArrayData()
        array.set_array(record.x_name, np.asarray(record.x, dtype=int))
        for name, values in record.curves.items():
            array.set_array(name, np.asarray(values, dtype=float))
        array.base.attributes.set('x_axis', record.x_name)
        return array

    def _engine_version(self, record: TrainingRecord) -> str:
        """The version read from the logs, else the one recorded on the code by ``register_codes``."""
        if record.engine_version:
            return record.engine_version
        return str(self.node.inputs.code.base.extras.get('mlffdiff_engine_version', ''))

    def _model(self, retrieved: orm.FolderData, writer, record: TrainingRecord) -> MlffModel:
        """The MlffModel of the retrieved model file (a new node if an identical one has a creator already)."""
        parameters = self.node.inputs.parameters.get_dict() if 'parameters' in self.node.inputs else {}
        values = writer.validate(parameters)
        training = self.node.inputs.training_set
        arguments = {
            'architecture': writer.architecture,
            'species': writer.model_species(values, training.species),
            'cutoff_A': writer.cutoff_A(values),
            'engine': writer.engine,
            'engine_version': self._engine_version(record),
            'target': writer.target(values),
            'torch_version': record.torch_version,
        }
        with retrieved.base.repository.as_path(writer.model_filename) as path:
            model = MlffModel.get_or_create(Path(path), **arguments)
            if model.is_stored:
                # The same file was stored before (e.g. a deterministic re-run). A node can have only one creator,
                # so this calculation gets its own node; the repository keeps one copy of the identical content.
                self.logger.info(f'the model file is identical to that of MlffModel<{model.pk}>.')
                model = MlffModel.from_file(Path(path), **arguments)
        return model

    def _metrics(self, record: TrainingRecord, writer) -> dict:
        """The final validation errors (units in the keys) and facts about the run."""
        metrics: dict = {key: float(value) for key, value in record.final.items() if math.isfinite(value)}
        metrics['metrics_source'] = record.final_source
        metrics['n_epochs' if record.x_name == 'epoch' else 'n_steps'] = int(record.x[-1]) if record.has_curve else 0
        for name, key in (('training_loss', 'final_training_loss'), ('validation_loss', 'final_validation_loss')):
            values = record.curves.get(name)
            if values is not None and len(values) and math.isfinite(values[-1]):
                metrics[key] = float(values[-1])
        metrics.update(record.extra)
        metrics['architecture'] = writer.architecture
        metrics['engine_version'] = self._engine_version(record)
        metrics['n_training_configurations'] = self.node.inputs.training_set.n_structures
        metrics['n_validation_configurations'] = self.node.inputs.validation_set.n_structures
        wall = self._wall_s()
        if wall is not None:
            metrics['training_wall_s'] = wall
        return metrics

    def _wall_s(self) -> float | None:
        """Wall time (s) of the job's commands from the timing file the job writes (None when absent)."""
        from aiida_mlffdiff.calculations.train import TIMING_FILE

        try:
            text = self.retrieved.base.repository.get_object_content(TIMING_FILE)
            start, end = (float(line) for line in text.split())
        except (FileNotFoundError, OSError, ValueError):
            return None
        return end - start if end >= start else None
