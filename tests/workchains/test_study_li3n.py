"""The study on a second material, α-Li3N: nothing in the chain assumes Li6PS5Cl (species, charges, mobile ion)."""

from __future__ import annotations

import json
import time

import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_mlffdiff.cli import cmd_root
from aiida_mlffdiff.data.msd import MsdData
from aiida_mlffdiff.structures.nitride import li3n_structure
from aiida_mlffdiff.study_report import study_rows
from aiida_mlffdiff.workchains.study import MlffDiffusionStudyWorkChain, code_keys
from tests.dft import qe_support

qe_code = qe_support.qe_code
pseudo_family = qe_support.pseudo_family


@pytest.mark.engines
def test_study_on_li3n_end_to_end(qe_code, pseudo_family, engine_code, capsys):
    """α-Li3N 2×2×1 (16 atoms) at the fast protocol: PBE labels of 8 sampled configurations, MACE, MD at 300 and
    400 K; the mobile ion's charge comes from the structure's formal charges, the model's species from the labels.

    Stoichiometric Li3N (no vacancies) hardly diffuses in 1 ps at these temperatures: a D the MSD does not resolve
    must be reported as unresolved with its reason, never as a number.
    """
    structure = li3n_structure().store()
    charges = structure.base.attributes.get('mlffdiff_formal_charges')
    codes = {key: engine_code('mace', key.split('_', 1)[1]) for key in code_keys(['mace'], [])}
    builder = MlffDiffusionStudyWorkChain.get_builder_from_protocol(
        structure, ['pbe'], ['mace'], [300, 400], protocol='fast', dft_code=qe_code, codes=codes,
        pseudo_family=pseudo_family, mobile_species='Li', mobile_charge=charges['Li'],
        overrides={
            'sampling': {'n_configurations': 8, 'max_strain': 0.03, 'rattle_A': 0.05, 'rattle_max_A': 0.2, 'seed': 0},
            'dft_overrides': {'ecutwfc': 25.0},
            'training_overrides': {'mace': {'max_epochs': 60, 'batch_size': 2, 'stress_weight': 0.0}},
            'diffusion_overrides': {
                'replicas_per_batch': 2, 'max_replicas': 2, 'target_relative_error': 0.5,
                'md': {'timestep_fs': 1.0, 'equilibration_ps': 0.1, 'production_ps': 1.0, 'coupling': 0.01},
            },
        },
    )  # fmt: skip
    started = time.perf_counter()
    _, node = run_get_node(builder)
    wall = time.perf_counter() - started
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert node.is_finished_ok, (node.exit_status, node.exit_message, report)

    model = node.outputs.models['pbe_mace']
    assert model.species == ['Li', 'N']  # from the labelled configurations, nothing assumed
    training_set = node.outputs.training_sets['pbe']
    assert set(training_set.species) == {'Li', 'N'}
    assert training_set.n_structures >= 6  # at most a quarter of the 8 single points may fail
    msds = [n for n in node.called_descendants if isinstance(n, orm.CalcJobNode) and 'msd' in n.outputs]
    assert msds
    for job in msds:
        msd = job.outputs.msd
        assert isinstance(msd, MsdData)
        assert (msd.species, msd.charge) == ('Li', charges['Li'])
        assert msd.n_ions == 3 * job.outputs.run_info['n_atoms'] // 4  # every Li of Li3N, no other species

    rows = study_rows(node)
    assert [row['label'] for row in rows] == ['pbe_mace']
    runner = CliRunner()
    text = runner.invoke(cmd_root, ['report', str(node.pk)])
    assert text.exit_code == 0, text.output
    data = json.loads(runner.invoke(cmd_root, ['report', str(node.pk), '--json']).output)
    assert data['rows'] == json.loads(json.dumps(rows))
    (row,) = rows
    for entry in row['temperatures'].values():
        if entry.get('unresolved'):  # a number that is not a result is named as such, with its reason
            assert f'pbe_mace D({entry["temperature_K"]:g} K): {entry["unresolved"]}' in text.output
        else:
            assert entry['D_cm2_s'] > 0
    with capsys.disabled():
        print(f'\nLi3N study (PBE × MACE × 2 temperatures, fast): {wall:.0f} s wall')
        print(text.output)
