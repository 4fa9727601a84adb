"""Build engine environments (cached by a hash of their requirements) and register them as AiiDA codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .engines import EngineSpec, setup_label

MARKER = 'mlffdiff-environment.json'


class EngineEnvironmentError(RuntimeError):
    """An engine environment could not be built or found."""


def environment_root() -> Path:
    """Where environments live: ``$MLFFDIFF_ENV_DIR`` or ``~/.cache/aiida-mlffdiff/envs`` (shared by checkouts)."""
    configured = os.environ.get('MLFFDIFF_ENV_DIR')
    return Path(configured).expanduser() if configured else Path.home() / '.cache' / 'aiida-mlffdiff' / 'envs'


def requirements_hash(spec: EngineSpec, python: str) -> str:
    """Short hash of what defines an environment: install steps and the interpreter version."""
    payload = json.dumps({'steps': spec.install_steps, 'python': python}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _reports_version(executable: str, version: str) -> bool:
    """Whether ``executable`` runs and is Python ``version`` (``major.minor``); pyenv shims may exist and fail."""
    try:
        result = subprocess.run(
            [executable, '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == version


def find_python(version: str) -> str | None:
    """A working interpreter of Python ``version`` (``major.minor``), or None.

    Looked for, in order: ``$MLFFDIFF_PYTHON_<major>_<minor>`` (e.g. ``MLFFDIFF_PYTHON_3_12``), ``python<version>``
    on PATH, pyenv's installs (``$PYENV_ROOT`` or ``~/.pyenv``, newest patch first), uv's managed pythons, and the
    usual system locations. Each candidate must run and report that version (a pyenv shim may exist and fail).
    """
    import glob

    candidates: list[str] = []
    configured = os.environ.get(f'MLFFDIFF_PYTHON_{version.replace(".", "_")}')
    if configured:
        candidates.append(configured)
    on_path = shutil.which(f'python{version}')
    if on_path:
        candidates.append(on_path)
    roots = [os.environ.get('PYENV_ROOT'), str(Path.home() / '.pyenv')]
    for root in filter(None, roots):
        found = glob.glob(str(Path(root) / 'versions' / f'{version}.*' / 'bin' / f'python{version}'))
        candidates += sorted(
            found, key=lambda p: [int(x) for x in Path(p).parents[1].name.split('.')[2:3] if x.isdigit()]
        )[::-1]
    candidates += sorted(
        glob.glob(str(Path.home() / '.local/share/uv/python' / f'cpython-{version}.*' / 'bin' / 'python3'))
    )[::-1]
    candidates += [f'/usr/bin/python{version}', f'/usr/local/bin/python{version}']
    seen = set()
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.add(candidate)
        if _reports_version(candidate, version):
            return candidate
    return None


def _interpreter(spec: EngineSpec) -> tuple[str, str]:
    """The base interpreter for the environment and its ``major.minor`` version."""
    if spec.python is None:
        return sys.executable, f'{sys.version_info.major}.{sys.version_info.minor}'
    candidate = find_python(spec.python)
    if candidate is None:
        variable = f'MLFFDIFF_PYTHON_{spec.python.replace(".", "_")}'
        raise EngineEnvironmentError(
            f'engine {spec.name} needs Python {spec.python}, and none was found (looked at ${variable}, '
            f'python{spec.python} on PATH, pyenv and uv installs, /usr/bin, /usr/local/bin). Install it '
            f'(e.g. `pyenv install {spec.python}` or `uv python install {spec.python}`) or set {variable} to its '
            'interpreter.'
        )
    return candidate, spec.python


@dataclass(frozen=True)
class Environment:
    """A built environment: where it is, whether this call built it, and what it cost."""

    spec: EngineSpec
    path: Path
    created: bool
    build_seconds: float
    size_mb: float
    version: str

    def executable(self, key: str) -> Path:
        """Absolute path of one of the spec's executables."""
        return self.path / 'bin' / self.spec.executables[key]


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file() and not f.is_symlink()) / 2**20


def build_environment(spec: EngineSpec, root: Path | None = None, log: Callable[[str], None] = print) -> Environment:
    """Create (or reuse) the environment of ``spec`` under ``root``; idempotent and safe to re-run.

    A finished build writes a marker file; a directory without it (an interrupted build) is rebuilt.
    """
    root = root or environment_root()
    base, python = _interpreter(spec)
    path = root / f'{spec.name}-{requirements_hash(spec, python)}'
    marker = path / MARKER
    if marker.is_file():
        info = json.loads(marker.read_text())
        return Environment(spec, path, False, info['build_seconds'], info['size_mb'], info['version'])
    if path.exists():
        log(f'{spec.name}: removing an unfinished environment in {path}')
        shutil.rmtree(path)
    log(f'{spec.name}: building {spec.description} in {path}')
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    _run([base, '-m', 'venv', str(path)], spec)
    pip = [str(path / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check']
    _run([*pip, '--upgrade', 'pip'], spec)
    for step in spec.install_steps:
        log(f'{spec.name}: pip install {" ".join(step)}')
        _run([*pip, *step], spec)
    version = _distribution_version(path, spec.version_of) if spec.version_of else ''
    seconds = time.perf_counter() - started
    size = _size_mb(path)
    info = {'build_seconds': seconds, 'size_mb': size, 'version': version, 'steps': spec.install_steps}
    marker.write_text(json.dumps(info, indent=2))
    log(f'{spec.name}: built in {seconds:.0f} s, {size:.0f} MB')
    return Environment(spec, path, True, seconds, size, version)


def _run(command: list[str], spec: EngineSpec) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = '\n'.join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise EngineEnvironmentError(f'{spec.name}: `{" ".join(command[:6])} ...` failed:\n{tail}')


def _distribution_version(path: Path, distribution: str) -> str:
    code = f'import importlib.metadata as m; print(m.version({distribution!r}))'
    result = subprocess.run([str(path / 'bin' / 'python'), '-c', code], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def code_label(spec: EngineSpec, key: str) -> str:
    """Label of the AiiDA code for one executable of an engine, e.g. ``mlffdiff-mace-train``."""
    return setup_label(spec.name, key)


def register_codes(environment: Environment, computer_label: str = 'localhost', log: Callable[[str], None] = print):
    """Register (or reuse) an ``InstalledCode`` per executable on ``computer_label``; returns the codes by key.

    An existing code with the same label is reused when it points at the same executable. If it points
    elsewhere (an environment with other pins), it is left alone and a code labelled with the new
    environment's hash is created, so that the provenance of earlier runs keeps pointing at what ran.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    computer = orm.load_computer(computer_label)
    codes = {}
    for key in environment.spec.executables:
        filepath = str(environment.executable(key))
        base_label = code_label(environment.spec, key)
        label, existing = base_label, None
        for candidate in (base_label, f'{base_label}-{environment.path.name.rsplit("-", 1)[-1]}'):
            label = candidate
            try:
                existing = orm.load_code(f'{candidate}@{computer_label}')
            except NotExistent:
                existing = None
                break
            if str(existing.filepath_executable) == filepath:
                break
        if existing is not None and str(existing.filepath_executable) == filepath:
            log(f'{environment.spec.name}: reusing code {label}@{computer_label} (pk {existing.pk})')
            codes[key] = existing
            continue
        if existing is not None:
            raise EngineEnvironmentError(
                f'codes {base_label} and {label} on {computer_label} point at other executables; '
                'relabel or delete them (verdi code relabel / verdi code delete).'
            )
        code = orm.InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=filepath,
            default_calc_job_plugin=environment.spec.calc_job_plugins.get(key),
            description=f'{environment.spec.description} [{environment.version}]',
        ).store()
        code.base.extras.set('mlffdiff_engine', environment.spec.name)
        code.base.extras.set('mlffdiff_engine_version', environment.version)
        log(f'{environment.spec.name}: registered code {label}@{computer_label} (pk {code.pk}) → {filepath}')
        codes[key] = code
    return codes
