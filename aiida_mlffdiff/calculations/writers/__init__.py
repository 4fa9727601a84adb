"""Input writers of the training CalcJob, one per architecture, and the training protocols (fast/moderate/precise)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from .base import LEARNING_RATE_KEY, Command, JobFiles, TrainingWriter
from .deepmd import DeepmdWriter
from .mace import MaceWriter
from .nequip import NequipWriter

__all__ = (
    'LEARNING_RATE_KEY',
    'WRITERS',
    'Command',
    'JobFiles',
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


@cache
def load_protocols() -> dict[str, Any]:
    """The content of ``protocols/training.yaml``."""
    text = resources.files('aiida_mlffdiff.protocols').joinpath('training.yaml').read_text(encoding='utf-8')
    return yaml.safe_load(text)


def get_protocol_parameters(
    architecture: str, protocol: str | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Hyper-parameters of ``architecture`` for ``protocol`` (default: the file's default protocol), with overrides.

    The result is checked against the writer's schema (types and values; species are checked at submission).
    """
    protocols = load_protocols()
    protocol = protocol or protocols['default_protocol']
    if protocol not in protocols['protocols']:
        raise ValueError(f'unknown protocol {protocol!r}: accepted are {", ".join(protocols["protocols"])}.')
    writer = get_writer(architecture)
    parameters = dict(protocols['architectures'][architecture][protocol])
    parameters.update(overrides or {})
    writer.validate(parameters)
    return parameters
