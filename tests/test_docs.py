"""The documentation builds: ``sphinx-build -W`` (warnings are errors) of docs/ into a temporary directory."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / 'docs'


@pytest.mark.slow
def test_docs_build(tmp_path):
    """Every page builds without a warning, and the index and the process reference are written."""
    missing = [name for name in ('sphinx', 'myst_parser', 'sphinx_click') if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f'the docs dependencies are not installed ({", ".join(missing)} missing): run `make docs` '
            "or `pip install -e '.[docs]'`."
        )
    sphinx_build = Path(sys.executable).parent / 'sphinx-build'  # the environment's own, not one from PATH
    if not sphinx_build.is_file():
        pytest.fail(f"{sphinx_build} does not exist: run `make docs` or `pip install -e '.[docs]'`.")
    output = tmp_path / 'html'
    environment = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
    result = subprocess.run(
        [str(sphinx_build), '-W', '--keep-going', '-q', '-b', 'html', str(DOCS), str(output)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f'sphinx-build failed ({result.returncode}):\n{result.stdout}\n{result.stderr}'
    assert (output / 'index.html').is_file()
    processes = output / 'reference' / 'processes.html'
    assert processes.is_file()
    text = processes.read_text(encoding='utf-8')
    for name in ('MlffDiffusionStudyWorkChain', 'DiffusionWorkChain', 'MdEnsembleCalculation', 'compute_diffusion'):
        assert name in text, f'{name} is not documented in reference/processes.html'
    assert 'ERROR_SOME_BRANCHES_FAILED' in text, 'the exit-code tables are missing'
    assert (output / 'reference' / 'cli.html').is_file()
