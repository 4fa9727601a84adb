"""AiiDA data plugins of aiida-mlffdiff."""

from .mlff_model import MlffModel, ModelChecksumError, ModelEngineError
from .msd import MsdData
from .training_set import TrainingSet, TrainingSetError

__all__ = ('MlffModel', 'ModelChecksumError', 'ModelEngineError', 'MsdData', 'TrainingSet', 'TrainingSetError')
