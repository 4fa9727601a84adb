"""Fixtures of the CLI tests: an in-process runner, trajectory file writers and a stored D(T) series."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import ase
import ase.io
import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mlffdiff.analysis.synthetic import brownian_trajectory
from aiida_mlffdiff.analysis.units import KB_EV_PER_K
from aiida_mlffdiff.cli import cmd_root
from tests.conftest import CELL, SYMBOLS

#: The D(T) law of the stored-results series: Ea (eV), D0 (cm²/s) and the temperatures (K).
SERIES_EA_EV = 0.3
SERIES_D0_CM2_S = 1.0e-3
SERIES_TEMPERATURES_K = (600.0, 800.0, 1000.0)

#: LAMMPS atom types of the synthetic system, in the order of ``--lammps-types``.
LAMMPS_TYPES = ('Li', 'P', 'S')

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def arrhenius_d(temperature_k: float, ea_ev: float = SERIES_EA_EV, d0_cm2_s: float = SERIES_D0_CM2_S) -> float:
    """The exact Arrhenius D (cm²/s)."""
    return float(d0_cm2_s * np.exp(-ea_ev / (KB_EV_PER_K * temperature_k)))


def node_count() -> int:
    """Number of nodes in the test profile."""
    return orm.QueryBuilder().append(orm.Node).count()


def frames_of(positions: np.ndarray, symbols=SYMBOLS, cell=CELL) -> list[ase.Atoms]:
    return [ase.Atoms(list(symbols), positions=frame, cell=cell, pbc=True) for frame in positions]


def write_xdatcar(path: Path, positions: np.ndarray, *, gz: bool = False) -> Path:
    """VASP XDATCAR written by ASE (8 decimals of fractional coordinates); gzipped copy if ``gz``."""
    path = Path(path)
    ase.io.write(path, frames_of(positions), format='vasp-xdatcar')
    if not gz:
        return path
    compressed = path.with_name(path.name + '.gz')
    with open(path, 'rb') as source, gzip.open(compressed, 'wb') as target:
        shutil.copyfileobj(source, target)
    return compressed


def write_extxyz(path: Path, positions: np.ndarray) -> Path:
    ase.io.write(path, frames_of(positions), format='extxyz')
    return Path(path)


def write_lammps_dump(path: Path, positions: np.ndarray, cell=CELL, symbols=SYMBOLS) -> Path:
    """A LAMMPS text dump (``id type xu yu zu``, triclinic box, no element column), written by hand.

    ASE cannot write this format. The cell must be LAMMPS-shaped (lower triangular: a along x, b in xy).
    """
    cell = np.asarray(cell, dtype=float)
    assert np.allclose(cell[np.triu_indices(3, 1)], 0), 'LAMMPS needs a lower-triangular cell'
    lx, ly, lz = cell[0, 0], cell[1, 1], cell[2, 2]
    xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
    bounds = (
        (min(0.0, xy, xz, xy + xz), lx + max(0.0, xy, xz, xy + xz), xy),
        (min(0.0, yz), ly + max(0.0, yz), xz),
        (0.0, lz, yz),
    )
    types = [LAMMPS_TYPES.index(s) + 1 for s in symbols]
    lines = []
    for step, frame in enumerate(positions):
        lines += ['ITEM: TIMESTEP', str(100 * step), 'ITEM: NUMBER OF ATOMS', str(len(symbols))]
        lines.append('ITEM: BOX BOUNDS xy xz yz pp pp pp')
        lines += [f'{low:.10f} {high:.10f} {tilt:.10f}' for low, high, tilt in bounds]
        lines.append('ITEM: ATOMS id type xu yu zu')
        lines += [
            f'{i + 1} {t} {x:.10f} {y:.10f} {z:.10f}' for i, (t, (x, y, z)) in enumerate(zip(types, frame, strict=True))
        ]
    Path(path).write_text('\n'.join(lines) + '\n')
    return Path(path)


class Cli:
    """Invoke ``aiida-mlffdiff`` in-process."""

    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args):
        return self.runner.invoke(cmd_root, [str(a) for a in args])

    def json(self, *args) -> dict:
        """Run a command with ``--json`` that must succeed; return its JSON."""
        result = self(*args, '--json')
        assert result.exit_code == 0, (result.output, result.exception)
        return json.loads(result.output)

    def analyze(self, paths, *options, fmt='extxyz') -> dict:
        return self.json('analyze', *paths, '--format', fmt, '--frame-interval-fs', 100, *options)

    def fails(self, *args) -> str:
        """Run a command that must fail cleanly (non-zero, no traceback, one line of message); return the message."""
        result = self(*args)
        assert result.exit_code != 0, result.output
        assert isinstance(result.exception, SystemExit), f'uncaught {result.exception!r}'
        assert 'Traceback' not in result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        return lines[0]


@pytest.fixture
def cli() -> Cli:
    return Cli()


def series_positions(temperature_k: float, replica: int, n_frames: int = 150) -> np.ndarray:
    """Wrapped positions of one replica of the Arrhenius series (the conftest system, 0.1 ps per frame)."""
    return brownian_trajectory(
        CELL,
        SYMBOLS,
        {'Li': arrhenius_d(temperature_k)},
        n_frames=n_frames,
        frame_interval_ps=0.1,
        seed=int(10 * temperature_k) + replica,
    )


@pytest.fixture(scope='session')
def stored_series(aiida_profile, tmp_path_factory) -> dict[float, dict]:
    """``analyze --temperature T`` results of 4 extxyz replicas at each of ``SERIES_TEMPERATURES_K``."""
    directory = tmp_path_factory.mktemp('series')
    cli = Cli()
    results = {}
    for temperature in SERIES_TEMPERATURES_K:
        paths = [
            write_extxyz(directory / f'T{temperature:.0f}_r{replica}.extxyz', series_positions(temperature, replica))
            for replica in range(4)
        ]
        results[temperature] = cli.analyze(paths, '--temperature', temperature)
    return results


@pytest.fixture(scope='session')
def stored_arrhenius(stored_series) -> dict:
    """``arrhenius PK1 PK2 PK3 --json`` on the stored series."""
    return Cli().json('arrhenius', *(result['pk'] for result in stored_series.values()))
