"""Protocols (fast / moderate / precise): YAML files of this package, one mechanism for every chain and engine.

Every protocol file has aiida-quantumespresso's layout: ``default_protocol``, ``default_inputs`` (shared by every
protocol) and ``protocols: {name: {description, ...}}``; a protocol's inputs are ``default_inputs`` merged
recursively with its entry. Classes read them through :class:`ProtocolMixin` (aiida-quantumespresso's, pointed at
this package's files); a file may hold further top-level sections (per functional, per architecture) that its
reader merges in the same way with :func:`merge`.

Protocols are resolved on the client, in ``get_builder_from_protocol``: what a process stores as inputs is the
resolved values, never a protocol name looked up later in the daemon.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin as _QeProtocolMixin
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

__all__ = ('ProtocolMixin', 'load_protocol_file', 'merge')


def merge(base: Mapping, overrides: Mapping | None = None) -> dict:
    """A deep copy of ``base`` with ``overrides`` merged in recursively (nested mappings merged, others replaced)."""
    return copy.deepcopy(recursive_merge(dict(base), dict(overrides or {})))


@cache
def _read(filename: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files(__name__).joinpath(filename).read_text(encoding='utf-8'))


def load_protocol_file(filename: str) -> dict[str, Any]:
    """The content of ``protocols/<filename>`` (a copy: callers may change it)."""
    return copy.deepcopy(_read(filename))


class ProtocolMixin(_QeProtocolMixin):
    """aiida-quantumespresso's ``ProtocolMixin`` reading ``protocols/<_protocol_file>`` of this package.

    ``get_protocol_inputs(protocol, overrides)`` refuses an unknown protocol with a message that lists the known
    ones; ``overrides`` are merged recursively (each class checks their keys itself, with a clear error).
    """

    #: File name in ``aiida_mlffdiff/protocols``.
    _protocol_file: str = ''

    @classmethod
    def get_protocol_filepath(cls):
        """The protocol file (an ``importlib.resources`` path inside the package)."""
        return resources.files(__name__).joinpath(cls._protocol_file)

    @classmethod
    def _load_protocol_file(cls) -> dict:
        return load_protocol_file(cls._protocol_file)

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: Mapping | None = None) -> dict:
        """``default_inputs`` ← the protocol's entry ← ``overrides``, without the description.

        :raises ValueError: an unknown protocol (the message lists the known ones).
        """
        data = cls._load_protocol_file()
        protocol = protocol or data['default_protocol']
        if protocol not in data['protocols']:
            raise ValueError(f'unknown protocol {protocol!r}; known: {", ".join(data["protocols"])}.')
        inputs = merge(data.get('default_inputs') or {}, data['protocols'][protocol])
        inputs.pop('description', None)
        return merge(inputs, overrides)
