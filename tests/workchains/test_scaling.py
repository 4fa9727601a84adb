"""ScalingWorkChain on three sizes with a real model, and ``aiida-mlffdiff plan`` against what it measured."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_mlffdiff.analysis.scaling import seconds_per_step_at
from aiida_mlffdiff.cli import cmd_root
from aiida_mlffdiff.workchains.scaling import ScalingWorkChain, probe_size, supercells_for
from tests.dft import qe_support

pseudo_family = qe_support.pseudo_family


def validation_error(builder) -> str | None:
    spec = ScalingWorkChain.spec().inputs
    problem = spec.validate(spec.pre_process(builder._inputs(prune=True)))
    return None if problem is None else problem.message


def test_sizes_are_chosen_and_checked(lpsc_cell, session_deepmd_model, engine_code):
    assert supercells_for(8, [8, 64, 512]) == [[1, 1, 1], [2, 2, 2], [4, 4, 4]]
    assert supercells_for(13, [400]) == [[3, 3, 3]]  # 351 atoms: within 30 % of 400, the most cubic repeat
    assert supercells_for(52, [100]) == [[2, 1, 1]]
    code = engine_code('deepmd', 'python')
    builder = ScalingWorkChain.get_builder_from_model(
        session_deepmd_model, lpsc_cell, code, supercells=[[1, 1, 1], [2, 2, 1], [2, 2, 2]]
    )
    assert 'at least 3 sizes spanning 30×' in validation_error(builder)
    builder = ScalingWorkChain.get_builder_from_model(
        session_deepmd_model, lpsc_cell, code, supercells=[[1, 1, 1], [2, 2, 2], [4, 4, 2]], md={'timestep_fs': 9.0}
    )
    assert 'exceeds 5 fs' in validation_error(builder)
    sizes = [[1, 1, 1], [2, 2, 2], [4, 4, 2]]
    builder = ScalingWorkChain.get_builder_from_model(
        session_deepmd_model, lpsc_cell, code, supercells=sizes, replicas_per_batch=[1, 4]
    )
    assert "replicas_per_batch needs an engine that batches replicas (torchsim), not 'ase'" in validation_error(builder)
    builder = ScalingWorkChain.get_builder_from_model(
        session_deepmd_model, lpsc_cell, code, supercells=sizes, threads_per_worker=[1, 1]
    )
    assert 'threads_per_worker must be distinct integers ≥ 1, got [1, 1]' in validation_error(builder)
    assert probe_size([[4, 4, 2], [1, 1, 1], [2, 2, 2]]) == [2, 2, 2]


@pytest.mark.engines
def test_scaling_on_three_sizes_and_the_plan_from_it(
    session_deepmd_model, engine_code, lpsc_cell, tmp_path, aiida_localhost, pseudo_family
):
    """DeePMD (ASE engine) at 8, 64 and 256 atoms (32×), 120 MD steps each at 100 K, and 1 and 2 threads at 64
    atoms; then the planner."""
    model = session_deepmd_model
    builder = ScalingWorkChain.get_builder_from_model(
        model, lpsc_cell, engine_code('deepmd', 'python'), supercells=[[1, 1, 1], [2, 2, 2], [4, 4, 2]],
        md={'temperature_K': 100.0}, threads_per_worker=[1, 2],
    )  # fmt: skip
    assert validation_error(builder) is None
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    scaling = results['scaling'].get_dict()
    assert scaling['n_atoms'] == [8, 64, 256]
    seconds = np.array(scaling['seconds_per_step'])
    assert np.all(seconds > 0)
    assert seconds[-1] > seconds[0]  # 32× the atoms cost more per step
    assert 0.0 < scaling['loglog_slope'] < 1.5
    assert np.allclose(np.array(scaling['atom_steps_per_s']) * seconds, scaling['n_atoms'])
    assert scaling['wall_hours_per_1e6_steps'] == pytest.approx(list(seconds * 1e6 / 3600))
    assert all(memory > 50 for memory in scaling['peak_rss_MB'])  # MB: torch alone takes more
    assert scaling['hardware']['logical_cores'] == os.cpu_count()
    jobs = [n for n in node.called if isinstance(n, orm.CalcJobNode)]
    assert [job.inputs.supercell.get_list() for job in jobs] == [[1, 1, 1], [2, 2, 2], [4, 4, 2], [2, 2, 2], [2, 2, 2]]
    threading = results['threading'].get_dict()
    assert threading['values'] == [1, 2]
    assert threading['n_atoms'] == 64
    assert threading['speedup'][0] == 1.0
    assert threading['parallel_efficiency'] == pytest.approx([1.0, threading['speedup'][1] / 2])
    assert [job.outputs.run_info['threads_per_worker'] for job in jobs[3:]] == [1, 2]
    assert jobs[4].get_option('resources')['num_cores_per_mpiproc'] == 2  # the scheduler is asked for the cores
    assert 'batching' not in results

    runner = CliRunner()
    arguments = ['plan', '--model', str(model.pk), '--atoms', '416', '--replicas', '300', '--production-ps', '70',
                 '--timestep-fs', '2', '--computer', 'localhost']  # fmt: skip
    result = runner.invoke(cmd_root, [*arguments, '--json'])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan['scaling_pk'] == node.pk
    assert plan['engine'] == 'ase'
    other_engine = runner.invoke(cmd_root, [*arguments, '--engine', 'torchsim'])
    assert other_engine.exit_code != 0
    assert "has no scaling measured on 'localhost' with the torchsim engine" in other_engine.output
    assert plan['size_range'] == 'extrapolated'
    expected = seconds_per_step_at(scaling['n_atoms'], seconds, 416)
    assert expected >= seconds[-1] * 416 / 256 * (1 - 1e-12)  # beyond the measured sizes: at least linear
    assert plan['seconds_per_step'] == pytest.approx(expected)
    assert plan['process_hours'] == pytest.approx(300 * 35_000 * expected / 3600)
    assert plan['node_hours'] == pytest.approx(plan['core_hours'] / os.cpu_count())  # the measured machine's cores
    wide = json.loads(runner.invoke(cmd_root, [*arguments, '--json', '--cores-per-node', '128']).output)
    assert wide['node_hours'] == pytest.approx(plan['core_hours'] / 128)
    text = runner.invoke(cmd_root, arguments)
    assert 'process-hours' in text.output
    assert f'node-hours ({os.cpu_count()} cores per node)' in text.output
    assert 'extrapolated' in text.output
    elsewhere = runner.invoke(cmd_root, [*arguments[:-1], 'cluster'])
    assert elsewhere.exit_code != 0
    assert "has no scaling measured on 'cluster'" in elsewhere.output
    plotted = runner.invoke(cmd_root, ['plot', str(node.pk), '-o', str(tmp_path / 'scaling.png')])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / 'scaling.png').stat().st_size > 10_000
    # the study's budget check: DeePMD rows measured here, MACE rows not
    from aiida_mlffdiff.planner import study_md_budget
    from aiida_mlffdiff.structures import li6ps5cl_structure
    from aiida_mlffdiff.workchains.study import MlffDiffusionStudyWorkChain, code_keys

    def never_run(label, plugin=None):
        return orm.InstalledCode(
            label=label, computer=aiida_localhost, filepath_executable='/bin/true', default_calc_job_plugin=plugin
        ).store()

    codes = {key: never_run(f'never-run-{key}') for key in code_keys(['mace', 'deepmd'], [])}
    study = MlffDiffusionStudyWorkChain.get_builder_from_protocol(
        li6ps5cl_structure().store(), ['pbe'], ['mace', 'deepmd'], [600, 800], protocol='precise', codes=codes,
        dft_code=never_run('never-run-pw', 'quantumespresso.pw'), pseudo_family=pseudo_family,
    )  # fmt: skip
    warnings = {w.split(':', 1)[0]: w for w in study_md_budget(study, 'localhost', budget_hours=1e-3)}
    assert warnings['mace'] == 'mace: no scaling measured on localhost: its MD cost is unknown.'
    assert warnings['deepmd'].startswith('deepmd: the MD may take up to ')  # precise: up to 300 replicas × 70 ps
    generous = {w.split(':', 1)[0] for w in study_md_budget(study, 'localhost', budget_hours=1e9)}
    assert 'deepmd' not in generous
    per_size = dict(zip(scaling['n_atoms'], np.round(seconds * 1e3, 3).tolist(), strict=True))
    print(f'\nscaling (DeePMD, ASE), ms/step: {per_size}, slope {scaling["loglog_slope"]:.2f}; plan at 416 atoms: '
          f'{plan["process_hours"]:.3g} process-hours; 2 threads: {threading["speedup"][1]:.2f}×')  # fmt: skip


@pytest.mark.engines
def test_torchsim_batching_at_the_probe_size(session_deepmd_model, engine_code, lpsc_cell, tmp_path):
    """DeePMD with torch-sim: the sizes, then 1 and 4 replicas in one worker's batch at the median size."""
    builder = ScalingWorkChain.get_builder_from_model(
        session_deepmd_model, lpsc_cell, engine_code('torchsim-deepmd', 'python'), engine='torchsim',
        supercells=[[1, 1, 1], [2, 2, 2], [4, 4, 2]], md={'temperature_K': 100.0}, replicas_per_batch=[1, 4],
    )  # fmt: skip
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    assert results['scaling']['engine'] == 'torchsim'
    batching = results['batching'].get_dict()
    assert batching['dimension'] == 'n_replicas'
    assert batching['values'] == [1, 4]
    assert batching['n_atoms'] == 64
    jobs = [n for n in node.called if isinstance(n, orm.CalcJobNode)]
    assert [job.outputs.run_info['batch_sizes'] for job in jobs[3:]] == [[1], [4]]  # one worker holds the batch
    rates = np.array(batching['atom_steps_per_s'])
    assert batching['speedup'] == pytest.approx((rates / rates[0]).tolist())
    assert 'threading' not in results
    plotted = CliRunner().invoke(cmd_root, ['plot', str(node.pk), '-o', str(tmp_path / 'batching.png')])
    assert plotted.exit_code == 0, plotted.output
    print(f'\ntorch-sim DeePMD at 64 atoms, 4 replicas per batch: {batching["speedup"][1]:.2f}× the throughput')


@pytest.mark.engines
def test_lammps_scaling_and_its_plan(session_deepmd_model, engine_code, lpsc_cell):
    """DeePMD through LAMMPS (pair_style deepmd): one LAMMPS replica per size, LAMMPS' own loop time; the planner
    picks it by engine."""
    model, lammps = session_deepmd_model, engine_code('lammps', 'lmp')
    sizes = [[1, 1, 1], [2, 2, 2], [4, 4, 2]]

    def builder_with(code, **extra):
        return ScalingWorkChain.get_builder_from_model(
            model, lpsc_cell, code, engine='lammps', supercells=sizes, md={'temperature_K': 100.0}, **extra
        )

    assert 'one replica and one thread per job' in validation_error(builder_with(lammps, threads_per_worker=[1, 2]))
    assert 'not a LAMMPS build' in validation_error(builder_with(engine_code('deepmd', 'python')))
    builder = builder_with(lammps)
    assert validation_error(builder) is None
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    scaling = results['scaling'].get_dict()
    assert scaling['engine'] == 'lammps'
    assert scaling['hardware']['logical_cores'] == os.cpu_count()  # the job script's record of the machine
    assert all(memory > 50 for memory in scaling['peak_rss_MB'])  # MB, LAMMPS' `info memory`: torch alone takes more
    assert scaling['n_atoms'] == [8, 64, 256]
    assert scaling['seconds_per_step'][-1] > scaling['seconds_per_step'][0]
    assert {child.process_label for child in node.called if child.process_label != 'scaling_summary'} == {
        'LammpsEnsembleWorkChain'
    }
    plan = CliRunner().invoke(cmd_root, ['plan', '--model', str(model.pk), '--atoms', '416', '--engine', 'lammps',
                                         '--json'])  # fmt: skip
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.output)['scaling_pk'] == node.pk
    print(f'\nscaling (DeePMD, LAMMPS), ms/step: {np.round(np.array(scaling["seconds_per_step"]) * 1e3, 3).tolist()}')
