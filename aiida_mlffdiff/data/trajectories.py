"""Reading trajectory files (VASP XDATCAR, extxyz, LAMMPS dump; gzip/bz2/xz too) into TrajectoryData nodes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiida.orm import TrajectoryData

from ..analysis import AnalysisError


@dataclass(frozen=True)
class TrajectoryArrays:
    """What the analysis needs from one trajectory: symbols, positions (Å, ``(frames, atoms, 3)``), fixed cell (Å)."""

    symbols: list[str]
    positions: np.ndarray
    cell: np.ndarray
    label: str = ''


#: Larger coordinates (Å) are refused: no MD moves an atom that far; such a number is a corrupt file or a blow-up.
MAX_COORDINATE_A = 1.0e6
#: Our format names → ASE's.
FORMATS = {'vasp-xdatcar': 'vasp-xdatcar', 'extxyz': 'extxyz', 'lammps-dump': 'lammps-dump-text'}


def file_sha256(path: Path) -> str:
    """Checksum of a file as stored on disk (compressed files are hashed compressed)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def lammps_dump_columns(path: Path) -> list[str]:
    """Column names of the first ``ITEM: ATOMS`` line of a (possibly compressed) LAMMPS text dump."""
    from ase.io.formats import open_with_compression

    try:
        with open_with_compression(str(path)) as handle:
            for _, line in zip(range(10_000), handle, strict=False):
                if line.startswith('ITEM: ATOMS'):
                    return line.split()[2:]
    except (OSError, UnicodeDecodeError) as exception:
        raise AnalysisError(f'cannot read {path.name} as lammps-dump: {exception}') from exception
    raise AnalysisError(f'{path.name} is not a LAMMPS text dump: no "ITEM: ATOMS" line.')


def read_trajectory(path: str | Path, fmt: str, lammps_types: list[str] | None = None) -> TrajectoryArrays:
    """Read all frames of ``path``; positions in Å, cell from the first frame (fixed cells only).

    :param fmt: one of :data:`FORMATS`.
    :param lammps_types: chemical symbols of LAMMPS atom types 1, 2, ... (dumps without an element column).
    :raises AnalysisError: unreadable file, no frames, or a changing number of atoms.
    """
    from ase.io import read  # ASE's I/O registry is slow to import; only the commands that read files need it

    path = Path(path)
    if fmt not in FORMATS:
        raise AnalysisError(f'unknown trajectory format {fmt!r}; choose one of {", ".join(FORMATS)}.')
    kwargs = {}
    if fmt == 'lammps-dump':
        if not lammps_types and 'element' not in lammps_dump_columns(path):
            raise AnalysisError(
                f'{path.name} has no element column: name the chemical symbols of LAMMPS atom types 1, 2, ... '
                '(--lammps-types Li,P,S,Cl).'
            )
        kwargs['specorder'] = lammps_types
    try:
        frames = read(path, index=':', format=FORMATS[fmt], **kwargs)
    except IndexError as exception:
        if lammps_types:
            raise AnalysisError(
                f'{path.name} has more atom types than the {len(lammps_types)} symbols given '
                f'({",".join(lammps_types)}).'
            ) from exception
        raise AnalysisError(f'cannot read {path.name} as {fmt}: {exception}') from exception
    except Exception as exception:  # ASE raises many types for malformed files
        if 'inhomogeneous' in str(exception) or 'could not convert' in str(exception):
            raise AnalysisError(
                f'{path.name} looks truncated: a frame of this {fmt} file is incomplete (the run was cut off or the '
                'copy is partial); remove the incomplete last frame, or the file.'
            ) from exception
        raise AnalysisError(f'cannot read {path.name} as {fmt}: {exception}') from exception
    if not frames:
        raise AnalysisError(f'{path.name} holds no frame.')
    sizes = {len(atoms) for atoms in frames}
    if len(sizes) != 1:
        raise AnalysisError(f'{path.name}: the number of atoms changes between frames ({sorted(sizes)}).')
    cells = np.array([atoms.cell.array for atoms in frames])
    if not np.allclose(cells, cells[0], rtol=0, atol=1e-6):
        raise AnalysisError(f'{path.name}: the cell changes between frames; only fixed-cell runs are supported.')
    positions = np.array([atoms.positions for atoms in frames])
    bad = ~np.isfinite(positions) | (np.abs(positions) > MAX_COORDINATE_A)
    if bad.any():
        frame, atom, axis = (int(i) for i in np.argwhere(bad)[0])
        raise AnalysisError(
            f'{path.name}: frame {frame}, atom {atom} has the coordinate {positions[frame, atom, axis]:.6g} Å along '
            f'{"xyz"[axis]} (not finite or beyond {MAX_COORDINATE_A:g} Å): the file is corrupt or the run blew up.'
        )
    return TrajectoryArrays(frames[0].get_chemical_symbols(), positions, cells[0], path.name)


def trajectory_node(arrays: TrajectoryArrays, path: str | Path | None = None, fmt: str = '') -> TrajectoryData:
    """An unstored TrajectoryData holding ``arrays``, with the source file's name, format and sha256."""
    n_frames = arrays.positions.shape[0]
    node = TrajectoryData()
    node.set_trajectory(
        arrays.symbols,
        arrays.positions,
        cells=np.repeat(arrays.cell[None], n_frames, axis=0),
        pbc=(True, True, True),
    )
    if path is not None:
        path = Path(path)
        node.base.attributes.set('source_file', path.name)
        node.base.attributes.set('source_sha256', file_sha256(path))
        node.base.attributes.set('source_format', fmt)
        node.label = path.name
    return node
