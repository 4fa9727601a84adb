"""The catalogue of bad inputs a new user tries, over every command: each is refused with a non-zero exit, no
traceback, one message line that names the problem, and nothing stored.

Cheap by design (no engine, no DFT): what the probe of the production-path issue found, kept as a regression list.
The builder-level refusals (work chains, CalcJobs, data types) live next to their processes' tests and in
``test_builder_catalogue`` below.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aiida import orm

from .conftest import node_count, write_extxyz, write_lammps_dump, write_xdatcar


class Files:
    """Bad and good input files, made on demand in one temporary folder."""

    def __init__(self, tmp_path: Path, make_positions):
        self.tmp, self.positions = tmp_path, make_positions

    def good(self, index: int = 0) -> Path:
        return write_extxyz(self.tmp / f'good_{index}.extxyz', self.positions(index))

    def extxyz(self, name: str, change: Callable[[np.ndarray], None]) -> Path:
        positions = self.positions(7)
        change(positions)
        return write_extxyz(self.tmp / name, positions)

    def text(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def truncated_xdatcar(self) -> Path:
        path = write_xdatcar(self.tmp / 'XDATCAR', self.positions(5))
        path.write_text(''.join(path.read_text().splitlines(keepends=True)[:-5]))
        return path

    def one_frame(self) -> Path:
        return write_extxyz(self.tmp / 'one.extxyz', self.positions(8)[:1])

    def fewer_atoms(self) -> Path:
        from ase.io import read, write

        frames = read(self.good(3), index=':')
        write(self.tmp / 'fewer.extxyz', [atoms[:-1] for atoms in frames], format='extxyz')
        return self.tmp / 'fewer.extxyz'

    def lammps_without_elements(self) -> Path:
        path = write_lammps_dump(self.tmp / 'dump.lammpstrj', self.positions(9))
        path.write_text(path.read_text().replace(' element', ''))
        return path

    def gzip_garbage(self) -> Path:
        path = self.tmp / 'broken.extxyz.gz'
        path.write_bytes(gzip.compress(b'not an extxyz file\n')[:20])
        return path

    def csv(self, text: str) -> Path:
        return self.text('table.csv', text)

    def poscar_without_li(self) -> Path:
        from ase.build import bulk

        path = self.tmp / 'POSCAR'
        bulk('NaCl', 'rocksalt', a=5.6).write(path, format='vasp')
        return path


ANALYZE = ['analyze', '--format', 'extxyz', '--frame-interval-fs', '100']
FC = ['launch', 'force-constants', '-s', 'li2s-conventional']
BM = ['launch', 'benchmark', '-m', '7net-0']


def fc(*extra) -> list:
    return [*FC, *extra]


GOOD_CSV = 'T,D,D_error\n600,1e-6,1e-7\n800,1e-5,1e-6\n1000,3e-5,3e-6\n'

#: (case, arguments from the files, a fragment of the message, lower case)
CASES: list[tuple[str, Callable[[Files], list], str]] = [
    # analyze: files
    ('analyze: missing file', lambda f: [*ANALYZE, f.tmp / 'nope.extxyz'], 'does not exist'),
    (
        'analyze: unknown format',
        lambda f: ['analyze', f.good(), '--format', 'pdb', '--frame-interval-fs', 100],
        "'pdb' is not one of",
    ),
    (
        'analyze: no frame interval',
        lambda f: ['analyze', f.good(), '--format', 'extxyz'],
        "missing option '--frame-interval-fs'",
    ),
    ('analyze: empty file', lambda f: [*ANALYZE, f.text('empty.extxyz', '')], 'empty.extxyz'),
    ('analyze: not an extxyz', lambda f: [*ANALYZE, f.text('notes.extxyz', 'hello\nworld\n')], 'notes.extxyz'),
    ('analyze: broken gzip', lambda f: [*ANALYZE, f.gzip_garbage()], 'broken.extxyz.gz'),
    (
        'analyze: truncated XDATCAR',
        lambda f: ['analyze', f.truncated_xdatcar(), '--format', 'vasp-xdatcar', '--frame-interval-fs', 100],
        'looks truncated',
    ),
    (
        'analyze: NaN in one file',
        lambda f: [*ANALYZE, f.good(), f.extxyz('nan.extxyz', lambda p: p.__setitem__((9, 1, 0), np.nan))],
        'nan.extxyz: frame 9',
    ),
    (
        'analyze: 1e300 coordinate',
        lambda f: [*ANALYZE, f.good(), f.extxyz('far.extxyz', lambda p: p.__setitem__((3, 2, 1), 1e300))],
        'far.extxyz: frame 3',
    ),
    ('analyze: one frame', lambda f: [*ANALYZE, f.one_frame()], 'frame'),
    ('analyze: replicas of different sizes', lambda f: [*ANALYZE, f.good(), f.fewer_atoms()], 'atoms'),
    ('analyze: species absent', lambda f: [*ANALYZE, f.good(), '--species', 'Na'], "'na'"),
    ('analyze: unknown element as species', lambda f: [*ANALYZE, f.good(), '--species', 'Xx'], "'xx'"),
    (
        'analyze: negative frame interval',
        lambda f: ['analyze', f.good(), '--format', 'extxyz', '--frame-interval-fs', -100],
        'frame_interval_fs',
    ),
    (
        'analyze: zero frame interval',
        lambda f: ['analyze', f.good(), '--format', 'extxyz', '--frame-interval-fs', 0],
        'frame_interval_fs',
    ),
    ('analyze: negative temperature', lambda f: [*ANALYZE, f.good(), '-T', -300], 'temperature'),
    ('analyze: window outside', lambda f: [*ANALYZE, f.good(), '--fit-start-ps', 5, '--fit-end-ps', 100], 'outside'),
    ('analyze: window reversed', lambda f: [*ANALYZE, f.good(), '--fit-start-ps', 6, '--fit-end-ps', 2], 'before'),
    (
        'analyze: one window bound',
        lambda f: [*ANALYZE, f.good(), '--fit-start-ps', 2],
        'give both --fit-start-ps and --fit-end-ps',
    ),
    ('analyze: unknown estimator', lambda f: [*ANALYZE, f.good(), '--estimator', 'magic'], "'magic' is not one of"),
    (
        'analyze: LAMMPS dump without elements',
        lambda f: ['analyze', f.lammps_without_elements(), '--format', 'lammps-dump', '--frame-interval-fs', 100],
        '--lammps-types',
    ),
    (
        'analyze: too few LAMMPS types',
        lambda f: [
            'analyze',
            write_lammps_dump(f.tmp / 'd.lammpstrj', f.positions(2)),
            '--format',
            'lammps-dump',
            '--frame-interval-fs',
            100,
            '--lammps-types',
            'Li',
        ],
        'atom types',
    ),
    # arrhenius
    ('arrhenius: nothing given', lambda f: ['arrhenius'], 'give either diffusion result pks or --csv'),
    ('arrhenius: csv and pks', lambda f: ['arrhenius', '1', '--csv', f.csv(GOOD_CSV)], 'give either'),
    (
        'arrhenius: csv without D',
        lambda f: ['arrhenius', '--csv', f.csv('T,Diff\n600,1e-6\n800,1e-5\n')],
        'lacks the column(s) d',
    ),
    ('arrhenius: csv non-number', lambda f: ['arrhenius', '--csv', f.csv('T,D\n600,fast\n800,1e-5\n')], 'not a number'),
    (
        'arrhenius: csv negative T',
        lambda f: ['arrhenius', '--csv', f.csv('T,D\n-600,1e-6\n800,1e-5\n1000,3e-5\n')],
        'positive',
    ),
    ('arrhenius: one temperature', lambda f: ['arrhenius', '--csv', f.csv('T,D\n600,1e-6\n')], '2 or more'),
    (
        'arrhenius: blank error',
        lambda f: ['arrhenius', '--csv', f.csv('T,D,D_error\n600,1e-6,1e-7\n800,1e-5,\n1000,3e-5,3e-6\n')],
        'd_error is blank at 800 k',
    ),
    (
        'arrhenius: zero error',
        lambda f: ['arrhenius', '--csv', f.csv('T,D,D_error\n600,1e-6,0\n800,1e-5,1e-6\n1000,3e-5,3e-6\n')],
        'd_error must be positive',
    ),
    ('arrhenius: empty csv', lambda f: ['arrhenius', '--csv', f.csv('T,D\n')], 'holds no data row'),
    ('arrhenius: headerless csv', lambda f: ['arrhenius', '--csv', f.csv('')], 'lacks the column(s)'),
    ('arrhenius: pk that does not exist', lambda f: ['arrhenius', '987654321'], 'cannot load the diffusion results'),
    (
        'arrhenius: structure without Li',
        lambda f: ['arrhenius', '--csv', f.csv(GOOD_CSV), '--structure', f.poscar_without_li()],
        "species 'li' is absent",
    ),
    (
        'arrhenius: unreadable structure',
        lambda f: ['arrhenius', '--csv', f.csv(GOOD_CSV), '--structure', f.text('cell.cif', 'garbage')],
        'cannot read structure cell.cif',
    ),
    # launch study
    (
        'study: unknown structure',
        lambda f: ['launch', 'study', '--structure', 'no-such-thing', '-T', 600],
        'neither a structuredata',
    ),
    (
        'study: temperature not a number',
        lambda f: ['launch', 'study', '--structure', 'li3n', '-T', '600,hot'],
        'temperatures must be numbers',
    ),
    (
        'study: unknown DFT code',
        lambda f: ['launch', 'study', '--structure', 'li3n', '-T', 600, '--dft-code', 'no-code'],
        'no code no-code',
    ),
    (
        'study: VASP without code',
        lambda f: ['launch', 'study', '--structure', 'li3n', '-T', 600, '--dft-engine', 'vasp'],
        '--dft-code is needed',
    ),
    (
        'study: unknown architecture',
        lambda f: ['launch', 'study', '--structure', 'li3n', '-T', 600, '-a', 'schnet', '-f', '', '--pretrained', ''],
        'unknown architecture(s) schnet',
    ),
    (
        'study: unknown pretrained model',
        lambda f: ['launch', 'study', '--structure', 'li3n', '-T', 600, '--pretrained', 'mace-mp-0'],
        'mace-mp-0',
    ),
    (
        'study: unreadable structure file',
        lambda f: ['launch', 'study', '--structure', f.text('cell.cif', 'garbage'), '-T', 600],
        'cell.cif',
    ),
    # launch locality / scaling / force-constants / setup / plot / report / plan
    (
        'locality: not a model',
        lambda f: ['launch', 'locality', str(orm.Int(3).store().pk), '--structure', 'li3n'],
        'not an mlffmodel',
    ),
    (
        'locality: unknown model',
        lambda f: ['launch', 'locality', 'no-such-model', '--structure', 'li3n'],
        'no-such-model',
    ),
    (
        'locality: radius not a number',
        lambda f: ['launch', 'locality', '7net-0', '--structure', 'li3n', '--radii', '3,far'],
        'radii must be numbers',
    ),
    (
        'scaling: threads not integers',
        lambda f: ['launch', 'scaling', '7net-0', '--structure', 'li3n', '--threads', '1,x'],
        '--threads takes comma-separated integers',
    ),
    (
        'scaling: unknown engine',
        lambda f: ['launch', 'scaling', '7net-0', '--structure', 'li3n', '--engine', 'gromacs'],
        "'gromacs' is not one of",
    ),
    (
        'force-constants: supercell too small',
        lambda f: fc('--supercell', '1,1,1', '-m', '7net-0', '--no-dft'),
        'less than twice the model cutoff',
    ),
    (
        'force-constants: amplitude too large',
        lambda f: fc('--supercell', '2,2,2', '-m', '7net-0', '--no-dft', '--distance', 0.5),
        'distance_a must be a displacement',
    ),
    (
        'force-constants: supercell not integers',
        lambda f: fc('--supercell', '2,2,x', '-m', '7net-0', '--no-dft'),
        '--supercell takes comma-separated integers',
    ),
    (
        'force-constants: no source',
        lambda f: fc('--supercell', '2,2,2', '--no-dft'),
        'nothing to compute',
    ),
    (
        'force-constants: orders',
        lambda f: fc('--supercell', '2,2,2', '--orders', '3'),
        "'3' is not one of",
    ),
    ('benchmark: nothing to judge against', lambda f: [*BM], 'nothing to benchmark'),
    (
        'benchmark: reference set of another type',
        lambda f: [*BM, '--reference-set', orm.Int(8).store().pk],
        'is a int, not a trainingset',
    ),
    ('benchmark: reference D not T=PK', lambda f: [*BM, '--reference-d', 'x'], '--reference-d takes t=pk'),
    ('benchmark: MD without temperatures', lambda f: [*BM, '-s', 'na3ps4', '--mobile', 'Na'], 'temperatures'),
    (
        'benchmark: mobile species not in the cell',
        lambda f: [*BM, '-s', 'na3ps4', '-T', '900'],
        'mobile_species li is not in the structure',
    ),
    ('setup: unknown engine', lambda f: ['setup', '--engines', 'foo,bar'], '--engines: unknown engine(s) bar, foo'),
    (
        'setup: unknown computer',
        lambda f: ['setup', '--engines', 'mace', '-Y', 'no-such-computer'],
        "no computer 'no-such-computer'",
    ),
    ('plot: not plottable', lambda f: ['plot', str(orm.Int(5).store().pk), '-o', f.tmp / 'x.png'], 'cannot plot int'),
    (
        'plot: directory missing',
        lambda f: ['plot', str(orm.Int(6).store().pk), '-o', f.tmp / 'missing' / 'x.png'],
        'does not exist',
    ),
    ('plot: no such node', lambda f: ['plot', '987654321'], 'no node'),
    ('report: not a study', lambda f: ['report', str(orm.Int(7).store().pk)], 'no processnode found'),
    ('report: no such node', lambda f: ['report', '987654321'], 'no processnode found'),
    ('plan: unknown model', lambda f: ['plan', '--model', 'no-such-model', '--atoms', 416], 'no-such-model'),
    ('plan: no atoms', lambda f: ['plan', '--model', '7net-0'], "missing option '--atoms'"),
    ('plan: zero replicas', lambda f: ['plan', '--model', '7net-0', '--atoms', 416, '--replicas', 0], 'replicas'),
]


@pytest.fixture
def files(tmp_path, make_positions, own_computer) -> Files:
    from aiida_mlffdiff.calculations.evaluate import pretrained_model

    pretrained_model('7net-0')  # the catalogue's pretrained node, made once per storage
    computer = own_computer('catalogue')
    orm.InstalledCode(label='mlffdiff-pretrained-python', computer=computer, filepath_executable='/bin/true').store()
    files = Files(tmp_path, make_positions)
    files.computer = computer.label
    return files


@pytest.mark.parametrize(('case', 'arguments', 'fragment'), CASES, ids=[case for case, _, _ in CASES])
def test_refused_with_one_line_and_nothing_stored(cli, files, case, arguments, fragment):
    args = [str(value) for value in arguments(files)]
    if args[:2] in (['launch', 'locality'], ['launch', 'scaling'], ['launch', 'force-constants'], BM[:2]):
        args += ['-Y', files.computer]
    before = node_count()
    result = cli(*args)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f'uncaught {result.exception!r}'
    assert 'Traceback' not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith(('Error', 'Critical'))]
    assert len(lines) == 1, result.output
    assert fragment in lines[0].lower(), lines[0]
    assert node_count() == before, f'{case}: the refused command stored nodes'


def test_the_catalogue_is_long_enough():
    """The production-path issue asks for at least 60 bad inputs over the CLI and the builders."""
    assert len(CASES) + len(BUILDER_CASES) >= 60
    assert len({case for case, _, _ in CASES}) == len(CASES)


# ---- the builders (no CLI): one ValueError with the message, nothing stored ------------------------------------


def _force_constants(parameters=None, supercell=(2, 2, 2), **extra):
    from aiida_mlffdiff.calculations.evaluate import pretrained_model
    from aiida_mlffdiff.structures.sulfide import li2s_structure
    from aiida_mlffdiff.workchains.force_constants import ForceConstantsWorkChain

    builder = ForceConstantsWorkChain.get_builder()
    builder.structure = li2s_structure('conventional')
    builder.supercell_matrix = orm.List(list(supercell))
    builder.parameters = orm.Dict(parameters or {})
    code = orm.InstalledCode(
        label='fc-python', computer=orm.load_computer('localhost'), filepath_executable='/bin/true'
    )
    builder.models = {'sevennet': pretrained_model('7net-0')}
    builder.model_codes = {'sevennet': code}
    for key, value in extra.items():
        builder[key] = value
    return builder


def _reference(configurations):
    from aiida_mlffdiff.workchains.reference import ReferenceDataWorkChain

    builder = ReferenceDataWorkChain.get_builder()
    builder.configurations = configurations
    builder.functional = orm.Str('pbe')
    builder.dft_settings = orm.Dict({})
    return builder


BUILDER_CASES: list[tuple[str, Callable[[], object], str]] = [
    ('force constants: amplitude 0.001 Å', lambda: _force_constants({'distance_A': 0.001}), 'distance_A must be'),
    ('force constants: orders [3]', lambda: _force_constants({'orders': [3]}), 'orders must be'),
    ('force constants: 0 snapshots', lambda: _force_constants({'number_of_snapshots': 0}), 'number_of_snapshots'),
    ('force constants: negative fc3 cutoff', lambda: _force_constants({'fc3_cutoff_A': -1.0}), 'fc3_cutoff_A'),
    ('force constants: singular supercell', lambda: _force_constants(supercell=(2, 0, 2)), 'singular'),
    ('reference: no configuration', lambda: _reference({}), 'no configuration given'),
]


@pytest.mark.parametrize(('case', 'builder', 'fragment'), BUILDER_CASES, ids=[case for case, _, _ in BUILDER_CASES])
def test_builders_refuse_at_submission(aiida_localhost, case, builder, fragment):
    from aiida.engine import run_get_node

    made = builder()
    before = node_count()
    with pytest.raises(ValueError, match=fragment):
        run_get_node(made)
    assert node_count() == before, f'{case}: the refused process stored nodes'
