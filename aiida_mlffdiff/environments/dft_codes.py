"""Register the Quantum ESPRESSO ``pw.x`` found on PATH as the InstalledCode ``mlffdiff-qe-pw`` (idempotent)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

__all__ = ('QE_CODE_LABEL', 'QE_PLUGIN', 'QeCodeError', 'find_pw_executable', 'register_qe_code')

#: Label of the pw.x code registered by ``aiida-mlffdiff setup`` and used by the tests.
QE_CODE_LABEL = 'mlffdiff-qe-pw'
QE_PLUGIN = 'quantumespresso.pw'
#: What to tell users whose machine has no pw.x.
INSTALL_HINT = (
    'install Quantum ESPRESSO (apt-get install quantum-espresso, or conda install -c conda-forge qe), '
    'or register your own pw.x with `verdi code create core.code.installed` (default plugin quantumespresso.pw)'
)


class QeCodeError(RuntimeError):
    """pw.x cannot be found, or a code with the label exists but points elsewhere."""


def find_pw_executable(executable: str = 'pw.x') -> Path:
    """The absolute path of ``pw.x`` on PATH.

    :raises QeCodeError: not found (the message says how to install it).
    """
    found = shutil.which(executable)
    if found is None:
        raise QeCodeError(f'{executable} is not on PATH: {INSTALL_HINT}.')
    return Path(found).resolve()


def register_qe_code(
    computer_label: str = 'localhost',
    *,
    executable: str | Path | None = None,
    label: str = QE_CODE_LABEL,
    log: Callable[[str], None] = print,
):
    """Register (or reuse) pw.x as the ``InstalledCode`` ``label`` on ``computer_label``; returns the code.

    An existing code with that label is reused when it points at the same executable; one pointing elsewhere
    is left alone and :class:`QeCodeError` is raised (relabel or delete it).
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    path = Path(executable).resolve() if executable is not None else find_pw_executable()
    if not path.is_file():
        raise QeCodeError(f'{path} is not a file: {INSTALL_HINT}.')
    computer = orm.load_computer(computer_label)
    try:
        existing = orm.load_code(f'{label}@{computer_label}')
    except NotExistent:
        existing = None
    if existing is not None:
        if str(existing.filepath_executable) != str(path):
            raise QeCodeError(
                f'code {label}@{computer_label} points at {existing.filepath_executable}, not {path}: '
                'relabel or delete it (verdi code relabel / verdi code delete).'
            )
        log(f'qe: reusing code {label}@{computer_label} (pk {existing.pk}) → {path}')
        return existing
    code = orm.InstalledCode(
        label=label,
        computer=computer,
        filepath_executable=str(path),
        default_calc_job_plugin=QE_PLUGIN,
        description='Quantum ESPRESSO pw.x (registered by aiida-mlffdiff setup)',
    ).store()
    code.base.extras.set('mlffdiff_engine', 'qe')
    log(f'qe: registered code {label}@{computer_label} (pk {code.pk}) → {path}')
    return code
