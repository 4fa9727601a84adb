"""What the parsers of the stand-alone drivers share: the status JSON, the npz of results and the stderr hint."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from aiida.engine import ExitCode
from aiida.parsers import Parser


class DriverParser(Parser):
    """Base parser for a driver that writes ``<info>.json`` (``status``, ``message``) and ``<results>.npz``.

    Subclasses set ``FAILURES``: driver status words → exit code names (``ERROR_MISSING_OUTPUT`` must exist).
    """

    FAILURES: ClassVar[dict[str, str]] = {}

    def _content(self, name: str, mode: str = 'r'):
        if name not in self.retrieved.base.repository.list_object_names():
            return None
        return self.retrieved.base.repository.get_object_content(name, mode=mode)

    def _exit(self, name: str, message: str) -> ExitCode:
        return self.exit_codes[name].format(message=message)

    def _stderr_hint(self, stderr_name: str) -> str:
        lines = [line.strip() for line in (self._content(stderr_name) or '').splitlines() if line.strip()]
        return f'last line of {stderr_name}: {lines[-1]}' if lines else f'{stderr_name} empty'

    def read_driver_outputs(
        self, info_name: str, arrays_name: str, stderr_name: str, required: Sequence[str]
    ) -> tuple[dict, dict] | ExitCode:
        """The driver's info dict and arrays, or the exit code that says why they cannot be read."""
        info_text = self._content(info_name)
        if info_text is None:
            return self._exit('ERROR_MISSING_OUTPUT', f'{info_name} not retrieved ({self._stderr_hint(stderr_name)})')
        try:
            info = json.loads(info_text)
        except json.JSONDecodeError as exception:
            return self._exit('ERROR_MISSING_OUTPUT', f'{info_name} is not JSON: {exception}')
        status = info.get('status')
        if status in self.FAILURES:
            return self._exit(self.FAILURES[status], info.get('message') or self._stderr_hint(stderr_name))
        if status != 'ok':
            hint = self._stderr_hint(stderr_name)
            return self._exit('ERROR_MISSING_OUTPUT', f'the driver stopped with status {status!r} ({hint})')
        raw = self._content(arrays_name, mode='rb')
        if raw is None:
            return self._exit('ERROR_MISSING_OUTPUT', f'{arrays_name} not retrieved')
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except (OSError, ValueError) as exception:
            return self._exit('ERROR_MISSING_OUTPUT', f'{arrays_name} unreadable: {exception}')
        missing = [key for key in required if key not in arrays]
        if missing:
            return self._exit('ERROR_MISSING_OUTPUT', f'{arrays_name} lacks {", ".join(missing)}')
        return info, arrays
