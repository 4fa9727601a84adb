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

from .engines import EngineSpec

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


def _interpreter(spec: EngineSpec) -> tuple[str, str]:
    """The base interpreter for the environment and its ``major.minor`` version."""
    if spec.python is None:
        return sys.executable, f'{sys.version_info.major}.{sys.version_info.minor}'
    candidate = shutil.which(f'python{spec.python}')
    if candidate is None:
        raise EngineEnvironmentError(
            f'engine {spec.name} needs Python {spec.python}, but python{spec.python} is not on PATH.'
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
    return f'mlffdiff-{spec.name}-{key}'


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
            default_calc_job_plugin=None,
            description=f'{environment.spec.description} [{environment.version}]',
        ).store()
        code.base.extras.set('mlffdiff_engine', environment.spec.name)
        code.base.extras.set('mlffdiff_engine_version', environment.version)
        log(f'{environment.spec.name}: registered code {label}@{computer_label} (pk {code.pk}) → {filepath}')
        codes[key] = code
    return codes
