"""``MdEnsembleCalculation`` with the torch-sim engine: dispatch, submission checks, real batched ensembles."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from aiida import orm
from aiida.common.folders import Folder
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_mlffdiff.calculations.md_ensemble import (
    DEFAULT_ENGINE,
    TORCHSIM_ARCHITECTURES,
    MdEnsembleCalculation,
    default_engine,
    engine_environment,
)
from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.drivers import driver_path

LPSC = ['Cl', 'Li', 'P', 'S']
BASE = {'temperature_K': 600.0, 'production_ps': 1.0, 'n_replicas': 3}
FILENAMES = {'mace': 'mlff_compiled.model', 'nequip': 'model.nequip.pt2', 'deepmd': 'model.pth'}


@pytest.fixture
def stand_in(tmp_path):
    """``stand_in(architecture, target=None)``: a stored MlffModel whose file is only bytes (never run)."""

    def factory(architecture: str = 'deepmd', target: str | None = None):
        path = tmp_path / FILENAMES[architecture]
        path.write_bytes(f'{architecture} {target} stand-in'.encode())
        return MlffModel.from_file(
            path, architecture=architecture, species=LPSC, cutoff_A=4.0, engine=architecture, target=target
        ).store()

    return factory


@pytest.fixture
def python_code(aiida_code_installed):
    """``python_code(environment)``: an InstalledCode standing for an environment's python (never run)."""

    def factory(environment: str | None):
        code = aiida_code_installed(label=f'python-{environment}', filepath_executable='/opt/envs/engine/bin/python')
        if environment is not None:
            code.base.extras.set('mlffdiff_engine', environment)
        return code

    return factory


@pytest.fixture
def lpsc_structure(lj_configurations):
    """The first LJ test configuration (8-atom Li4PS2Cl cell) as a StructureData."""
    return orm.StructureData(ase=lj_configurations(n=1, seed=0)[0]).store()


def instantiate(**inputs):
    return instantiate_process(get_manager().get_runner(), MdEnsembleCalculation, **inputs)


def test_prepare_torchsim(stand_in, python_code, lpsc_structure, tmp_path):
    """engine torchsim: the torch-sim driver is shipped with the ones it imports."""
    model = stand_in('deepmd')
    process = instantiate(
        code=python_code('torchsim-deepmd'),
        model=model,
        structure=lpsc_structure,
        parameters=orm.Dict({**BASE, 'seed': 3, 'engine': 'torchsim'}),
        metadata={'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 2}}},
    )
    sandbox = tmp_path / 'sandbox'
    sandbox.mkdir()
    calcinfo = process.prepare_for_submission(Folder(str(sandbox)))
    assert sorted(p.name for p in sandbox.iterdir()) == [
        'evaluate_model.py',
        'md_core.py',
        'md_ensemble.json',
        'md_ensemble.py',
        'md_ensemble_torchsim.py',
        'structure.extxyz',
    ]
    assert (sandbox / 'md_ensemble_torchsim.py').read_text() == driver_path('md_ensemble_torchsim').read_text()
    config = json.loads((sandbox / 'md_ensemble.json').read_text())
    assert config['engine'] == 'torchsim'
    assert config['workers'] == 2
    assert config['seeds'] == [3, 4, 5]
    (codeinfo,) = calcinfo.codes_info
    assert codeinfo.cmdline_params[0] == 'md_ensemble_torchsim.py'
    exports = dict(
        line.removeprefix('export ').split('=', 1) for line in calcinfo.prepend_text.splitlines() if line.strip()
    )
    assert exports['OMP_NUM_THREADS'] == '1'
    assert exports['DP_INTRA_OP_PARALLELISM_THREADS'] == '1'


def test_explicit_engine_and_defaults(stand_in, python_code, lpsc_structure, tmp_path):
    """``engine: torchsim`` with a NequIP model compiled for the batch target; ase stays the default engine."""
    process = instantiate(
        code=python_code('torchsim-nequip'),
        model=stand_in('nequip', target='batch'),
        structure=lpsc_structure,
        parameters=orm.Dict({**BASE, 'engine': 'torchsim'}),
    )
    sandbox = tmp_path / 'sandbox'
    sandbox.mkdir()
    process.prepare_for_submission(Folder(str(sandbox)))
    assert json.loads((sandbox / 'md_ensemble.json').read_text())['engine'] == 'torchsim'
    assert set(TORCHSIM_ARCHITECTURES) == {'mace', 'nequip', 'deepmd'}
    assert set(DEFAULT_ENGINE.values()) <= {'ase', 'torchsim'}
    assert default_engine('mace', 52) == 'ase'
    assert default_engine('deepmd', 52) == 'torchsim'
    assert default_engine('deepmd', 416) == 'ase'
    assert default_engine('chgnet', 52) == 'ase'
    assert engine_environment(stand_in('nequip', target='batch'), 'torchsim') == 'torchsim-nequip'
    assert engine_environment(stand_in('nequip', target='ase'), 'ase') == 'nequip'


@pytest.mark.parametrize(
    ('case', 'message'),
    [
        ('pretrained', "engine 'torchsim' does not run pretrained chgnet-0.3.0 models"),
        ('nequip_ase_target', "compiled for the 'ase' target; torch-sim needs a model compiled with"),
        ('ase_environment', "engine 'torchsim' needs 'torchsim-deepmd'"),
        ('other_torchsim', "engine 'torchsim' needs 'torchsim-deepmd'"),
        ('torchsim_code_for_ase', "set engine to 'torchsim'"),
        ('lammps', 'use LammpsEnsembleWorkChain'),
        ('unknown', "engine 'torch-sim' is unknown"),
    ],
)
def test_unsupported_combinations_refused(case, message, stand_in, python_code, lpsc_structure):
    model, code, engine = stand_in('deepmd'), python_code('torchsim-deepmd'), 'torchsim'
    if case == 'pretrained':
        model = MlffModel.pretrained_model('chgnet-0.3.0', architecture='chgnet', species=LPSC).store()
    elif case == 'nequip_ase_target':
        model, code = stand_in('nequip', target='ase'), python_code('torchsim-nequip')
    elif case == 'ase_environment':
        code = python_code('deepmd')
    elif case == 'other_torchsim':
        code = python_code('torchsim-nequip')
    elif case == 'torchsim_code_for_ase':
        engine = 'ase'
    elif case == 'lammps':
        engine = 'lammps'
    elif case == 'unknown':
        engine = 'torch-sim'
    with pytest.raises(ValueError, match=message):
        instantiate(code=code, model=model, structure=lpsc_structure, parameters=orm.Dict({**BASE, 'engine': engine}))


# ------------------------------------------------------------------------------------ real torch-sim ensembles
@pytest.fixture
def torchsim_model(session_model, session_deepmd_model):
    """``torchsim_model(architecture)``: a tiny trained model that the torch-sim engine can run (once per session).

    DeePMD's frozen model is the one the LAMMPS tests use; NequIP is trained in the nequip environment and compiled
    with ``--target batch`` by the torchsim-nequip environment's ``nequip-compile``.
    """

    def factory(architecture: str):
        if architecture == 'deepmd':
            return session_deepmd_model
        return session_model(architecture, {'compile_target': 'batch'}, compile_environment=f'torchsim-{architecture}')

    return factory


#: 200 K on a 16-atom cell: the fast-protocol models are crude, and an 8-atom cell at 300 K occasionally runs
#: away (instantaneous T > 3 × target, flagged and excluded as it should be, but not what these tests are about).
ENSEMBLE = {
    'temperature_K': 200.0,
    'timestep_fs': 1.0,
    'equilibration_ps': 0.02,
    'production_ps': 0.1,
    'sampling_interval_fs': 10.0,
    'n_replicas': 3,
    'seed': 11,
    'engine': 'torchsim',
}


def run_torchsim(engine_code, model, structure, workers: int = 1, **parameters):
    inputs = {
        'code': engine_code(f'torchsim-{model.architecture}', 'python'),
        'model': model,
        'structure': structure,
        'supercell': orm.List([2, 1, 1]),
        'parameters': orm.Dict({**ENSEMBLE, **parameters}),
        'metadata': {
            'options': {
                'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': workers},
                'max_wallclock_seconds': 600,
            }
        },
    }
    started = time.perf_counter()
    results, node = run_get_node(MdEnsembleCalculation, **inputs)
    return results, node, time.perf_counter() - started


@pytest.mark.engines
@pytest.mark.parametrize('architecture', ['deepmd', 'nequip'])
def test_torchsim_ensemble_runs_and_is_reproducible(architecture, engine_code, torchsim_model, lpsc_structure, capsys):
    """A batched ensemble through AiiDA gives finite MSDs; the same seeds give the same MSD (checked with DeePMD: the
    seeds and the integrator are torch-sim's, not the model's; a NequIP run costs ~50 s on 2 cores)."""
    model = torchsim_model(architecture)
    results, node, wall = run_torchsim(engine_code, model, lpsc_structure)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    msd = results['msd']
    thermo = results['thermo'].get_dict()
    assert thermo['n_ok'] >= 2, thermo  # at most one crude-model blow-up, flagged and excluded
    assert msd.n_replicas == thermo['n_ok']
    assert msd.n_ions == 8
    assert np.isfinite(msd.msd_A2).all()
    assert msd.msd_A2[:, -1].min() > 0
    assert msd.time_ps.size == 11
    for replica in thermo['replicas']:
        if replica['status'] == 'ok':
            assert 30 < replica['temperature_mean_K'] < 600
    info = results['run_info'].get_dict()
    assert info['engine'] == 'torchsim'
    assert info['batch_sizes'] == [3]
    assert info['versions']['torch_sim'] == '0.6.2'
    assert 0 < info['timing']['model_share'] <= 1

    if architecture == 'deepmd':
        again, node2, _ = run_torchsim(engine_code, model, lpsc_structure)
        assert node2.is_finished_ok, (node2.exit_status, node2.exit_message)
        assert [r['status'] for r in again['thermo']['replicas']] == [r['status'] for r in thermo['replicas']]
        np.testing.assert_allclose(again['msd'].msd_A2, msd.msd_A2, rtol=1e-6, atol=1e-8)
    with capsys.disabled():
        print(
            f'\nmd_ensemble (torchsim, {architecture}, 16 atoms, 3 replicas batched × 0.12 ps): {wall:.1f} s wall, '
            f'{info["timing"]["atom_steps_per_replica_s"]:.0f} atom-steps per process-second, model share '
            f'{info["timing"]["model_share"]:.2f}'
        )


@pytest.mark.engines
def test_torchsim_workers_and_blow_up(engine_code, torchsim_model, lpsc_structure):
    """Two worker processes each run a batch; a blown-up replica is flagged and excluded, as with ASE."""
    model = torchsim_model('deepmd')
    parameters = {'temperature_K': 30000.0, 'timestep_fs': 5.0, 'sampling_interval_fs': 5.0}
    parameters.update(equilibration_ps=0.0, production_ps=0.5, n_replicas=4)
    results, node, _ = run_torchsim(engine_code, model, lpsc_structure, workers=2, **parameters)
    assert node.exit_status in (
        MdEnsembleCalculation.exit_codes.ERROR_ALL_REPLICAS_FAILED.status,
        MdEnsembleCalculation.exit_codes.ERROR_TOO_MANY_FAILED_REPLICAS.status,
    ), (node.exit_status, node.exit_message)
    thermo = results['thermo'].get_dict()
    assert thermo['n_excluded'] >= 3
    failed = {r['status'] for r in thermo['replicas'] if r['index'] in thermo['excluded']}
    assert failed <= {'nan', 'atoms_too_close', 'temperature_runaway', 'error'}
    info = results['run_info'].get_dict()
    assert info['batch_sizes'] == [2, 2]
    assert len({r['pid'] for r in info['replicas']}) == 2


def test_md_engine_code_follows_the_measured_default(stand_in, own_computer):
    """torch-sim where it is measured faster and its code can run the model; ase otherwise; a clear error if none."""
    from aiida_mlffdiff.calculations.md_ensemble import md_engine_code

    computer = own_computer('md-engine')

    def register(environment: str) -> orm.InstalledCode:
        code = orm.InstalledCode(
            label=f'mlffdiff-{environment}-python', computer=computer, filepath_executable='/opt/envs/engine/bin/python'
        ).store()
        code.base.extras.set('mlffdiff_engine', environment)
        return code

    deepmd, nequip = stand_in('deepmd'), stand_in('nequip', target='ase')
    with pytest.raises(ValueError, match=r'mlffdiff-deepmd-python@md-engine-.* is not registered; run `aiida-mlffdiff'):
        md_engine_code(deepmd, 13, computer.label)
    ase_deepmd = register('deepmd')
    assert md_engine_code(deepmd, 13, computer.label) == ('ase', ase_deepmd)  # torch-sim not registered
    torchsim_deepmd = register('torchsim-deepmd')
    assert md_engine_code(deepmd, 13, computer.label) == ('torchsim', torchsim_deepmd)
    assert md_engine_code(deepmd, 416, computer.label) == ('ase', ase_deepmd)  # batching no longer pays
    ase_nequip = register('nequip')
    register('torchsim-nequip')
    assert md_engine_code(nequip, 13, computer.label) == ('ase', ase_nequip)  # compiled for the ase target
    batch_nequip = stand_in('nequip', target='batch')
    assert md_engine_code(batch_nequip, 13, computer.label)[0] == 'torchsim'


def test_study_takes_the_measured_engine(own_computer):
    """A study's builder picks torch-sim for DeePMD on a small cell once its code exists (NequIP only when trained
    for the batch target); otherwise ase with the model's own python."""
    from aiida_mlffdiff.workchains.study import study_md_engine

    computer = own_computer('study-engine')
    given = orm.InstalledCode(
        label='my-deepmd-python', computer=computer, filepath_executable='/opt/envs/engine/bin/python'
    ).store()
    assert study_md_engine('deepmd', 13, given) == ('ase', given)  # nothing registered under the setup labels
    torchsim = orm.InstalledCode(
        label='mlffdiff-torchsim-deepmd-python', computer=computer, filepath_executable='/opt/envs/ts/bin/python'
    ).store()
    engine, code = study_md_engine('deepmd', 13, given)
    assert (engine, code.pk) == ('torchsim', torchsim.pk)
    assert study_md_engine('deepmd', 416, given) == ('ase', given)  # batching does not pay at 416 atoms
    assert study_md_engine('mace', 13, given) == ('ase', given)
    orm.InstalledCode(
        label='mlffdiff-torchsim-nequip-python', computer=computer, filepath_executable='/opt/envs/tn/bin/python'
    ).store()
    assert study_md_engine('nequip', 13, given, {'compile_target': 'ase'}) == ('ase', given)
    assert study_md_engine('nequip', 13, given, {'compile_target': 'batch'})[0] == 'torchsim'
