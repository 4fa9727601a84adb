"""Engine environments: cached by requirement hash, rebuilt when unfinished, codes registered once."""

import json

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mlffdiff.cli import cmd_root
from aiida_mlffdiff.environments import ENGINES, EngineSpec, build_environment, register_codes
from aiida_mlffdiff.environments.manager import MARKER, requirements_hash

#: An engine whose environment is a bare venv: enough to test caching and registration quickly.
BARE = EngineSpec(name='bare', description='a bare venv', install_steps=(), executables={'python': 'python'})


@pytest.fixture
def env_root(tmp_path, monkeypatch):
    root = tmp_path / 'envs'
    monkeypatch.setenv('MLFFDIFF_ENV_DIR', str(root))
    return root


def test_build_once_then_reuse(env_root):
    messages = []
    first = build_environment(BARE, log=messages.append)
    assert first.created
    assert (first.path / 'bin' / 'python').exists()
    assert json.loads((first.path / MARKER).read_text())['steps'] == []
    second = build_environment(BARE, log=messages.append)
    assert not second.created
    assert second.path == first.path
    assert any('building' in m for m in messages)


def test_unfinished_environment_is_rebuilt(env_root):
    environment = build_environment(BARE)
    (environment.path / MARKER).unlink()  # as if the build had been interrupted
    messages = []
    again = build_environment(BARE, log=messages.append)
    assert again.created
    assert any('removing an unfinished environment' in m for m in messages)


def test_hash_changes_with_the_pins():
    other = EngineSpec(name='bare', description='', install_steps=(('six==1.16.0',),), executables={})
    assert requirements_hash(BARE, '3.11') != requirements_hash(other, '3.11')
    assert requirements_hash(BARE, '3.11') != requirements_hash(BARE, '3.12')


def test_codes_registered_once(env_root, aiida_profile_clean, aiida_localhost):
    environment = build_environment(BARE)
    codes = register_codes(environment, aiida_localhost.label, log=lambda m: None)
    again = register_codes(environment, aiida_localhost.label, log=lambda m: None)
    assert codes['python'].pk == again['python'].pk
    code = orm.load_code(codes['python'].pk)
    assert str(code.filepath_executable) == str(environment.path / 'bin' / 'python')
    assert 'OMP_NUM_THREADS' not in code.prepend_text  # the CalcJobs set threads, so users can raise them
    assert code.base.extras.get('mlffdiff_engine') == 'bare'


def test_setup_refuses_unknown_engines():
    result = CliRunner().invoke(cmd_root, ['setup', '--engines', 'mace,gaussian'])
    assert result.exit_code != 0
    assert 'unknown engine(s) gaussian' in result.output


def test_setup_command_builds_and_registers(env_root, aiida_profile_clean, aiida_localhost, monkeypatch):
    monkeypatch.setitem(ENGINES, 'bare', BARE)
    runner = CliRunner()
    result = runner.invoke(cmd_root, ['setup', '--engines', 'bare', '--computer', aiida_localhost.label])
    assert result.exit_code == 0, result.output
    assert 'bare: built' in result.output
    again = runner.invoke(cmd_root, ['setup', '--engines', 'bare', '--computer', aiida_localhost.label])
    assert 'bare: reused' in again.output
    assert 'reusing code mlffdiff-bare-python' in again.output


def test_thread_variables_one_recipe():
    """Every engine job's thread variables come from one function: threads for torch/OpenMP/BLAS and the engine's
    intra-op pool, the engine's other variables as they are, nothing the user set."""
    from aiida_mlffdiff.environments.engines import thread_variables

    assert thread_variables('mace') == {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1'}
    deepmd = thread_variables('deepmd', 2, {'MKL_NUM_THREADS': '4'})
    assert deepmd == {
        'OMP_NUM_THREADS': '2',
        'OPENBLAS_NUM_THREADS': '2',
        'NUM_WORKERS': '0',
        'DP_INTRA_OP_PARALLELISM_THREADS': '2',
        'DP_INTER_OP_PARALLELISM_THREADS': '1',
    }
    assert thread_variables(None) == thread_variables('no-such-environment') == thread_variables('mace')


def test_the_environments_pin_the_versions_the_md_fast_path_was_proven_against():
    """The ASE driver's fast path copies ASE's Langevin step and keeps MACE's graph: proven with exact versions.

    Every environment whose python runs the ASE driver pins exactly those versions; when a pin moves, this fails
    until the fast path has been re-proven (tests/parsers/test_lammps_dump.py, tests/calculations/test_md_ensemble.py)
    and ``FAST_PATH_PROVEN`` updated.
    """
    from aiida_mlffdiff.drivers.md_ensemble import FAST_PATH_PROVEN
    from aiida_mlffdiff.environments.engines import ENGINES

    for name in ('mace', 'nequip', 'deepmd', 'pretrained'):
        requirements = ENGINES[name].requirements()
        assert f'ase=={FAST_PATH_PROVEN["ase"]}' in requirements, (name, requirements)
    assert f'mace-torch=={FAST_PATH_PROVEN["mace-torch"]}' in ENGINES['mace'].requirements()


def test_the_fast_path_is_opt_in_and_version_bound(monkeypatch):
    """Off unless asked; on only with the proven versions; the reason is what the job's info records."""
    from aiida_mlffdiff.drivers import md_ensemble

    assert md_ensemble.fast_path_problem({'architecture': 'mace'}) == 'not asked for (fast_path false)'
    monkeypatch.setattr(md_ensemble, 'version', lambda name: md_ensemble.FAST_PATH_PROVEN.get(name, '0'))
    assert md_ensemble.fast_path_problem({'architecture': 'mace', 'fast_path': True}) is None
    monkeypatch.setattr(md_ensemble, 'version', lambda name: '9.9')
    problem = md_ensemble.fast_path_problem({'architecture': 'nequip', 'fast_path': True})
    assert problem == f'versions differ from the proven ones: ase 9.9 (proven: {md_ensemble.FAST_PATH_PROVEN["ase"]})'
    described = md_ensemble.describe({'architecture': 'nequip', 'fast_path': True})['fast_path']
    assert described == {'asked': True, 'used': False, 'reason': problem}
