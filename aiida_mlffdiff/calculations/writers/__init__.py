"""Input writers of the training CalcJob, one per architecture, and the training protocols (fast/moderate/precise)."""

from __future__ import annotations

from typing import Any

from ...protocols import ProtocolMixin, load_protocol_file
from .base import LEARNING_RATE_KEY, Command, JobFiles, TrainingWriter
from .deepmd import DeepmdWriter
from .mace import MaceWriter
from .nequip import NequipWriter

__all__ = (
    'LEARNING_RATE_KEY',
    'WRITERS',
    'Command',
    'JobFiles',
    'TrainingProtocol',
    'TrainingWriter',
    'get_protocol_parameters',
    'get_writer',
    'load_protocols',
)

#: architecture → its writer.
WRITERS: dict[str, TrainingWriter] = {
    writer.architecture: writer for writer in (MaceWriter(), NequipWriter(), DeepmdWriter())
}


def get_writer(architecture: str) -> TrainingWriter:
    """The writer of ``architecture``; ``ValueError`` naming the accepted ones otherwise."""
    try:
        return WRITERS[architecture]
    except (KeyError, TypeError):
        raise ValueError(f'unknown architecture {architecture!r}: accepted are {", ".join(sorted(WRITERS))}.') from None


class TrainingProtocol(ProtocolMixin):
    """The training protocols (``protocols/training.yaml``): per protocol, hyper-parameters per architecture."""

    _protocol_file = 'training.yaml'


def load_protocols() -> dict[str, Any]:
    """The content of ``protocols/training.yaml``."""
    return load_protocol_file('training.yaml')


def get_protocol_parameters(
    architecture: str, protocol: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Hyper-parameters of ``architecture`` for ``protocol`` (default: the file's default protocol), with overrides.

    The result is checked against the writer's schema (types and values; species are checked at submission).
    """
    writer = get_writer(architecture)
    parameters = TrainingProtocol.get_protocol_inputs(protocol)[architecture]
    parameters.update(overrides or {})
    writer.validate(parameters)
    return parameters
