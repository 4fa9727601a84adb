"""Fixtures for the CalcJob tests: engine environments (built once, cached across runs) registered as codes.

Tests that run a real engine are marked ``engines``; deselect them with ``pytest -m 'not engines'``.
The environments live in ``$MLFFDIFF_ENV_DIR`` or ``~/.cache/aiida-mlffdiff/envs`` and are reused when
present (a first build takes minutes and needs the package index).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope='session')
def engine_environment():
    """``engine_environment(name)``: the built environment of engine ``name`` (built once if missing, then cached)."""
    from aiida_mlffdiff.environments import ENGINES, EngineEnvironmentError, build_environment

    built = {}

    def factory(name: str):
        if name not in built:
            try:
                built[name] = build_environment(ENGINES[name], log=lambda message: None)
            except EngineEnvironmentError as exception:
                pytest.fail(f'the {name} engine environment cannot be built: {exception}')
        return built[name]

    return factory


@pytest.fixture
def engine_code(engine_environment, aiida_localhost):
    """``engine_code(name, key='python')``: the InstalledCode of an engine executable on the test localhost."""
    from aiida_mlffdiff.environments import register_codes

    def factory(name: str, key: str = 'python'):
        codes = register_codes(engine_environment(name), computer_label=aiida_localhost.label, log=lambda message: None)
        return codes[key]

    return factory
