"""``EvaluateCalculation``: folder, command line and thread variables; submission-time errors; real engine runs."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_mlffdiff.calculations.evaluate import (
    CHGNET_SPECIES,
    PRETRAINED_MODELS,
    SEVENNET_0_SPECIES,
    EvaluateCalculation,
    pretrained_model,
)
from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.drivers import driver_path

LPSC = ['Cl', 'Li', 'P', 'S']


@pytest.fixture
def model_file(tmp_path):
    """``model_file(name, content)``: a stand-in model file (bytes) in a temporary directory."""

    def factory(name: str = 'model_compiled.model', content: bytes = b'not a real model, only bytes to checksum'):
        path = tmp_path / 'models' / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        return path

    return factory


@pytest.fixture
def trained_model(model_file):
    """``trained_model(architecture='mace', engine=None, species=LPSC, ...)``: a stored file-based MlffModel."""

    def factory(architecture='mace', engine=None, species=LPSC, name='model_compiled.model', store=True, **kwargs):
        node = MlffModel.from_file(
            model_file(name, f'{architecture} {name}'.encode()),
            architecture=architecture,
            species=species,
            cutoff_A=5.0,
            engine=engine or architecture,
            **kwargs,
        )
        return node.store() if store else node

    return factory


@pytest.fixture
def engine_python(aiida_code_installed):
    """``engine_python(engine='mace', computer=None)``: an InstalledCode standing for an engine's python."""

    def factory(engine: str | None = 'mace', computer=None, label=None):
        options = {'computer': computer} if computer is not None else {}
        code = aiida_code_installed(
            label=label or f'python-{engine}', filepath_executable='/opt/envs/engine/bin/python', **options
        )
        if engine is not None:
            code.base.extras.set('mlffdiff_engine', engine)
        return code

    return factory


def prepare(folder_path, **inputs):
    """Instantiate the process (runs the input validation) and call ``prepare_for_submission``."""
    process = instantiate_process(get_manager().get_runner(), EvaluateCalculation, **inputs)
    pathlib.Path(folder_path).mkdir(parents=True, exist_ok=True)
    folder = Folder(str(folder_path))
    return process, process.prepare_for_submission(folder), folder


def exports(calcinfo) -> dict[str, str]:
    lines = [line for line in calcinfo.prepend_text.splitlines() if line.startswith('export ')]
    return dict(line.removeprefix('export ').split('=', 1) for line in lines)


def test_prepare_trained_model(make_training_set, trained_model, engine_python, tmp_path):
    dataset = make_training_set(n=6)
    model = trained_model('mace')
    _, calcinfo, folder = prepare(tmp_path / 'sandbox', code=engine_python('mace'), model=model, dataset=dataset)

    assert sorted(folder.get_content_list()) == ['evaluate_model.py']
    assert (tmp_path / 'sandbox' / 'evaluate_model.py').read_text() == driver_path('evaluate_model').read_text()
    assert sorted(calcinfo.local_copy_list) == sorted(
        [(dataset.uuid, 'configurations.extxyz', 'dataset.extxyz'), (model.uuid, model.filename, model.filename)]
    )
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params == [
        'evaluate_model.py',
        '--architecture',
        'mace',
        '--model',
        'model_compiled.model',
        '--data',
        'dataset.extxyz',
        '--output',
        'predictions.npz',
        '--info',
        'evaluate.json',
        '--threads',
        '1',
    ]
    assert not any(arg.startswith('/') for arg in codeinfo.cmdline_params), 'nothing may point at a local path'
    assert (codeinfo.stdout_name, codeinfo.stderr_name) == ('evaluate.out', 'evaluate.err')
    assert sorted(calcinfo.retrieve_list) == ['evaluate.err', 'evaluate.json', 'evaluate.out', 'predictions.npz']
    assert exports(calcinfo) == {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1'}


def test_prepare_pretrained_model(make_training_set, engine_python, tmp_path):
    dataset = make_training_set(n=3)
    model = pretrained_model('chgnet-0.3.0')
    _, calcinfo, _ = prepare(tmp_path, code=engine_python('pretrained'), model=model, dataset=dataset)
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params[:9] == [
        'evaluate_model.py',
        '--architecture',
        'chgnet',
        '--pretrained',
        '0.3.0',  # the package's own name, CHGNet.load(model_name='0.3.0')
        '--weights',
        'chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar',
        '--weights-sha256',
        model.sha256,
    ]
    assert '--model' not in codeinfo.cmdline_params
    assert calcinfo.local_copy_list == [(dataset.uuid, 'configurations.extxyz', 'dataset.extxyz')]


def test_prepare_copies_extra_files_and_deepmd_threads(make_training_set, trained_model, model_file, engine_python):
    extra = model_file('type_map.json', b'["Cl", "Li", "P", "S"]')
    model = trained_model('deepmd', name='model.pth', extra_files=[extra])
    _, calcinfo, _ = prepare(
        model_file().parent / 'sandbox', code=engine_python('deepmd'), model=model, dataset=make_training_set(n=3)
    )
    assert (model.uuid, 'type_map.json', 'type_map.json') in calcinfo.local_copy_list
    variables = exports(calcinfo)
    assert variables['OMP_NUM_THREADS'] == '1'
    assert variables['DP_INTRA_OP_PARALLELISM_THREADS'] == '1'
    assert variables['DP_INTER_OP_PARALLELISM_THREADS'] == '1'
    assert variables['NUM_WORKERS'] == '0'


def test_threads_option_and_user_variables(make_training_set, trained_model, engine_python, tmp_path):
    inputs = {
        'code': engine_python('mace'),
        'model': trained_model('mace'),
        'dataset': make_training_set(n=3),
        'metadata': {'options': {'num_threads': 2, 'environment_variables': {'MKL_NUM_THREADS': '4'}}},
    }
    _, calcinfo, _ = prepare(tmp_path, **inputs)
    # the user's own setting is left to the scheduler's environment block, not overridden by the prepend text
    assert exports(calcinfo) == {'OMP_NUM_THREADS': '2', 'OPENBLAS_NUM_THREADS': '2'}
    assert calcinfo.codes_info[0].cmdline_params[-2:] == ['--threads', '2']


def test_code_on_a_remote_computer(make_training_set, trained_model, engine_python, aiida_computer_ssh, tmp_path):
    """Preparing needs no connection and writes nothing that refers to the submitting machine."""
    remote = aiida_computer_ssh(label='cluster', configure=False)
    code = engine_python('nequip', computer=remote, label='python-nequip-cluster')
    model = trained_model('nequip', name='model.nequip.pt2', target='ase')
    _, calcinfo, _ = prepare(tmp_path, code=code, model=model, dataset=make_training_set(n=3))
    assert calcinfo.codes_info[0].cmdline_params[4] == 'model.nequip.pt2'
    assert all(not str(item).startswith('/') for entry in calcinfo.local_copy_list for item in entry)


def test_dry_run_submit_script(make_training_set, trained_model, engine_python):
    """The submit script exports the thread variables and runs the engine python on the shipped driver."""
    inputs = {
        'code': engine_python('mace'),
        'model': trained_model('mace'),
        'dataset': make_training_set(n=3),
        'metadata': {'dry_run': True, 'store_provenance': False},
    }
    _, node = run_get_node(EvaluateCalculation, **inputs)
    folder = pathlib.Path(node.dry_run_info['folder'])
    script = (folder / '_aiidasubmit.sh').read_text()
    assert 'export OMP_NUM_THREADS=1' in script
    assert "'/opt/envs/engine/bin/python' 'evaluate_model.py' '--architecture' 'mace'" in script
    assert "> 'evaluate.out' 2> 'evaluate.err'" in script
    assert {'evaluate_model.py', 'dataset.extxyz', 'model_compiled.model'} <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize(
    ('case', 'message'),
    [
        ('species', 'does not cover Cl, P, S'),
        ('engine', "python-nequip@localhost runs the 'nequip' environment: .* needs the 'mace' environment"),
        ('checksum', 'changed or corrupted'),
        ('target', "compiled for the 'batch' target"),
    ],
)
def test_submission_errors(case, message, make_training_set, trained_model, engine_python):
    code = engine_python('nequip' if case == 'engine' else 'mace')
    model = trained_model('mace')
    if case == 'species':
        model = trained_model('mace', species=['Li'], name='li_only.model')
    elif case == 'checksum':
        model = trained_model('mace', name='corrupted.model', store=False)
        model.base.repository.put_object_from_bytes(b'flipped bits', model.filename)
    elif case == 'target':
        code = engine_python('nequip')
        model = trained_model('nequip', name='batch.nequip.pt2', target='batch')
    with pytest.raises(ValueError, match=message):
        prepare('/nonexistent', code=code, model=model, dataset=make_training_set(n=3))


def test_code_without_engine_extra_is_accepted(make_training_set, trained_model, engine_python, tmp_path):
    """A code registered by hand (no ``mlffdiff_engine`` extra) is trusted: the driver reports a wrong one."""
    _, calcinfo, _ = prepare(
        tmp_path, code=engine_python(None, label='hand-made'), model=trained_model('mace'), dataset=make_training_set(3)
    )
    assert calcinfo.codes_info[0].cmdline_params[2] == 'mace'


def test_pretrained_model_get_or_create():
    chgnet = pretrained_model('chgnet-0.3.0')
    assert chgnet.is_stored
    assert chgnet.pretrained
    assert chgnet.filename is None
    assert pretrained_model('chgnet-0.3.0').pk == chgnet.pk
    assert (chgnet.architecture, chgnet.engine, chgnet.cutoff_A) == ('chgnet', 'pretrained', 6.0)
    assert chgnet.engine_version == '0.4.2'
    assert set(LPSC) <= set(chgnet.species)
    assert len(CHGNET_SPECIES) == 94
    assert set(chgnet.species) == set(CHGNET_SPECIES)

    sevennet = pretrained_model('7net-0')
    assert sevennet.pk != chgnet.pk
    assert (sevennet.architecture, sevennet.cutoff_A, sevennet.engine_version) == ('sevenn', 5.0, '0.13.0')
    assert len(SEVENNET_0_SPECIES) == 89
    assert {'Po', 'At', 'Rn', 'Fr', 'Ra'}.isdisjoint(sevennet.species)
    assert {'Pu', 'Ac', 'H'} <= set(sevennet.species)

    with pytest.raises(ValueError, match='unknown pretrained model'):
        pretrained_model('mace-mp-0')
    assert set(PRETRAINED_MODELS) == {
        'chgnet-0.2.0', 'chgnet-0.3.0', 'chgnet-r2scan',
        '7net-0', '7net-0_22may2024', '7net-l3i5', '7net-mf-0-pbe', '7net-mf-0-r2scan',
    }  # fmt: skip

    # Provenance of the weights: the file in the wheel, its sha256, the package's name and the fidelity head.
    mf = pretrained_model('7net-mf-0-r2scan')
    assert (mf.package_model, mf.modal) == ('7net-mf-0', 'R2SCAN')
    assert mf.package_file == 'sevenn/pretrained_potentials/SevenNet_MF_0/checkpoint_sevennet_mf_0.pth'
    assert mf.sha256 == pretrained_model('7net-mf-0-pbe').sha256
    assert pretrained_model('7net-mf-0-pbe').pk != mf.pk
    assert 'r2SCAN' in mf.source
    assert 'MIT' in mf.source
    assert len({pretrained_model(name).sha256 for name in PRETRAINED_MODELS}) == 7  # two heads share one file
    assert pretrained_model('chgnet-0.2.0').cutoff_A == 5.0


def test_driver_path():
    path = driver_path('evaluate_model')
    assert path.is_file()
    assert driver_path('evaluate_model.py') == path
    with pytest.raises(FileNotFoundError, match=r'available: .*evaluate_model'):
        driver_path('no_such_driver')


def test_driver_imports_no_aiida():
    """The driver runs in engine environments, which have no AiiDA: it must not import it."""
    tree = ast.parse(driver_path('evaluate_model').read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(module.split('.')[0] == 'aiida' or module.startswith('aiida_') for module in modules)


def test_driver_without_torch_fails_clearly(tmp_path):
    """Run with a python that has no torch: exit status 3, one ERROR line last, the same message in the JSON."""
    runner = (
        'import runpy, sys; sys.modules["torch"] = None; '
        f'sys.argv = ["evaluate_model.py", *sys.argv[1:]]; runpy.run_path({str(driver_path("evaluate_model"))!r}, '
        'run_name="__main__")'
    )
    command = [sys.executable, '-c', runner, '--architecture', 'chgnet', '--pretrained', 'chgnet-0.3.0']
    result = subprocess.run([*command, '--data', 'dataset.extxyz'], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('ERROR: torch cannot be imported by')
    info = json.loads((tmp_path / 'evaluate.json').read_text())
    assert info['status'] == 'model_load_failed'
    assert f'ERROR: {info["message"]}' == last
    assert not (tmp_path / 'predictions.npz').exists()


# ---------------------------------------------------------------------------------------------------------------------
# Real runs in the engine environment (built once, cached in ~/.cache/aiida-mlffdiff/envs).


def _evaluate(code, model, dataset):
    results, node = run_get_node(EvaluateCalculation, code=code, model=model, dataset=dataset)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results, node


ERROR_KEYS = (
    'energy_mae_meV_atom',
    'energy_rmse_meV_atom',
    'force_mae_meV_A',
    'force_rmse_meV_A',
    'stress_mae_meV_A3',
    'stress_rmse_GPa',
)


@pytest.mark.engines
def test_pretrained_model_on_lj_set(engine_code, make_training_set):
    """SevenNet-0 on the LJ test set through AiiDA: finite metrics, right shapes, reproducible. (Every packaged model,
    CHGNet's included, is evaluated on real DFT labels in ``tests/workchains/test_benchmark.py``.)"""
    name = '7net-0'
    code = engine_code('pretrained')
    dataset = make_training_set()
    model = pretrained_model(name)
    first, _ = _evaluate(code, model, dataset)

    metrics = first['metrics'].get_dict()
    assert metrics['n_structures'] == dataset.n_structures == 30
    assert metrics['n_atoms'] == dataset.n_atoms_total
    assert metrics['has_stress']
    assert metrics['model_gives_stress']
    for key in ERROR_KEYS:
        assert np.isfinite(metrics[key]), key
        assert metrics[key] >= 0, key
    assert set(metrics['force_mae_per_species_meV_A']) == set(LPSC)

    parity = first['parity']
    assert parity.get_array('energy_per_atom_reference_eV').shape == (30,)
    assert parity.get_array('energy_per_atom_predicted_eV').shape == (30,)
    assert parity.get_array('forces_predicted_eV_A').shape == (dataset.n_atoms_total, 3)
    assert parity.get_array('stress_predicted_eV_A3').shape == (30, 6)
    assert np.isfinite(parity.get_array('forces_predicted_eV_A')).all()

    run_info = first['run_info'].get_dict()
    assert run_info['threads']['torch_intra_op'] == 1
    assert run_info['versions']['torch'].startswith('2.13')
    assert run_info['versions']['engine_version'] == model.engine_version
    print(f'\n{name}: evaluate {run_info["timing"]["evaluate_s"]:.2f} s, total {run_info["timing"]["total_s"]:.1f} s')

    second, _ = _evaluate(code, model, dataset)
    assert second['metrics'].get_dict() == metrics, 'the same model on the same data must give the same metrics'
    np.testing.assert_array_equal(
        second['parity'].get_array('forces_predicted_eV_A'), parity.get_array('forces_predicted_eV_A')
    )


@pytest.mark.engines
def test_model_in_the_wrong_environment(engine_environment, aiida_code_installed, trained_model, make_training_set):
    """A MACE model given to the pretrained environment's python (hand-made code, no engine extra): a clear failure."""
    python = engine_environment('pretrained').executable('python')
    code = aiida_code_installed(label='python-without-extra', filepath_executable=str(python))
    model = trained_model('mace')
    _, node = run_get_node(EvaluateCalculation, code=code, model=model, dataset=make_training_set(n=3))
    assert node.exit_status == EvaluateCalculation.exit_codes.ERROR_MODEL_LOAD_FAILED.status
    assert 'engine package `mace` (mace-torch) cannot be imported' in node.exit_message
    assert 'Is this the python of the mace environment?' in node.exit_message
