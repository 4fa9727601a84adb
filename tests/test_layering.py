"""Every floor of the package imports only downward (README, "Layout"); the drivers stand apart.

The floors, bottom to top. A module may import a unit of a lower floor or its own unit, never one of its own floor
(sideways) or above. Every top-level unit must have a floor, so a new module gets one on purpose.
Checked on the source (``ast``), imports inside functions included: ``python -m pytest tests/test_layering.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'aiida_mlffdiff'

FLOORS = {
    # numpy/scipy or plain Python: no AiiDA node types
    'analysis': 0,
    'parameters': 0,
    'architectures': 0,
    'metrics': 0,
    'structures': 0,
    'protocols': 0,
    # data types, engine environments, the DFT engine protocol, the peers cross-check
    'data': 1,
    'environments': 1,
    'dft': 1,
    'crosscheck': 1,
    # calcfunctions and CalcJobs (with the training writers)
    'functions': 2,
    'calculations': 2,
    # parsers of the CalcJobs' retrieved files
    'parsers': 3,
    'workchains': 4,
    # what is built from stored results
    'study_report': 5,
    'benchmark_report': 5,
    'planner': 5,
    'plotting': 5,
    'demo': 5,
    'cli': 6,
}
#: Stand-alone scripts run by an engine's python: they import nothing of the package, and the package imports only
#: ``aiida_mlffdiff.drivers`` itself (``driver_path``) and the MD core shared by every engine, never a driver script.
DRIVERS = 'drivers'
DRIVER_MODULES_THE_PACKAGE_MAY_IMPORT = ('aiida_mlffdiff.drivers', 'aiida_mlffdiff.drivers.md_core')


def _imports(path: Path) -> list[str]:
    """Absolute names of the package modules that ``path`` imports."""
    module = '.'.join(('aiida_mlffdiff', *path.relative_to(PACKAGE).with_suffix('').parts))
    package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
    package = package.removesuffix('.__init__')
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[: len(package.split('.')) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            names.append(target)
            if target == f'aiida_mlffdiff.{DRIVERS}':  # `from ..drivers import md_ensemble` imports a driver module
                names.extend(
                    f'{target}.{alias.name}'
                    for alias in node.names
                    if (PACKAGE / DRIVERS / f'{alias.name}.py').is_file()
                )
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [name for name in names if name == 'aiida_mlffdiff' or name.startswith('aiida_mlffdiff.')]


def _unit(name: str) -> str:
    parts = name.split('.')
    return parts[1] if len(parts) > 1 else ''


def test_every_unit_has_a_floor():
    units = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()}
    units = {unit for unit in units if not unit.startswith(('_', '.')) and unit not in ('py', DRIVERS)}
    units -= {'__init__'}
    missing = sorted(units - set(FLOORS))
    assert not missing, f'give these a floor in tests/test_layering.py and the README layout: {missing}'


def test_imports_go_only_downward():
    problems = []
    for path in sorted(PACKAGE.rglob('*.py')):
        relative = path.relative_to(PACKAGE).as_posix()
        own = relative.split('/')[0].removesuffix('.py')
        for name in _imports(path):
            unit = _unit(name)
            if unit in ('', own):
                continue
            if own == DRIVERS:
                problems.append(f'{relative} (a driver) imports {name}')
            elif unit == DRIVERS:
                if name not in DRIVER_MODULES_THE_PACKAGE_MAY_IMPORT:
                    problems.append(f'{relative} imports the driver script {name}')
            elif FLOORS[unit] >= FLOORS[own]:
                problems.append(f'{relative} (floor {FLOORS[own]}) imports {name} (floor {FLOORS[unit]})')
    assert not problems, '\n'.join(problems)


def test_the_readme_layout_names_every_folder():
    readme = (PACKAGE.parent / 'README.md').read_text(encoding='utf-8')
    layout = readme.split('## Layout', 1)[1].split('\n## ', 1)[0]
    for unit in [*FLOORS, DRIVERS]:
        if (PACKAGE / unit).is_dir():
            assert f'  {unit}/' in layout, unit
        else:
            assert f'  {unit}.py' in layout, unit


def test_the_md_core_stands_alone():
    """The MD core is imported by the drivers (as ``md_core``) and by the daemon: the standard library and numpy at
    import, ASE only inside the functions that need it, nothing of the package or its sibling scripts."""
    tree = ast.parse((PACKAGE / DRIVERS / 'md_core.py').read_text(encoding='utf-8'))
    top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in top if isinstance(node, ast.ImportFrom)}
    assert names <= {'__future__', 'math'}, names
    inner = {
        (node.module or '').split('.')[0] if isinstance(node, ast.ImportFrom) else node.names[0].name.split('.')[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and node not in top
    }
    assert inner <= {'numpy', 'ase'}, inner
