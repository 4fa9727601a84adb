"""ReferenceDataWorkChain: validation at submission, a real QE run through the daemon, tolerated and fatal failures."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from aiida_mlffdiff.data.training_set import TrainingSet
from aiida_mlffdiff.workchains.reference import ReferenceDataWorkChain
from tests.dft import qe_support
from tests.dft.qe_support import FAST_OVERRIDES, lpsc_atoms, rattled, structure

pseudo_family = qe_support.pseudo_family
qe_code = qe_support.qe_code


@pytest.fixture
def fake_pw(aiida_localhost):
    """A code of the pw plugin that is never run (validation tests)."""
    return orm.InstalledCode(
        label='pw-never-run',
        computer=aiida_localhost,
        filepath_executable='/bin/true',
        default_calc_job_plugin='quantumespresso.pw',
    ).store()


def builder_for(code, configurations, functional='pbe', family=None, **kwargs):
    """A fast-protocol builder (FAST_OVERRIDES) for ``configurations`` (list of Atoms or StructureData)."""
    nodes = [item if isinstance(item, orm.StructureData) else structure(item) for item in configurations]
    return ReferenceDataWorkChain.get_builder_from_protocol(
        code, nodes, functional, engine='qe', protocol='fast', overrides=FAST_OVERRIDES, pseudo_family=family, **kwargs
    )


def odd_electron_cell():
    """The 13-atom cell without its Cl: 53 electrons, which fixed occupations cannot hold (pw.x stops at once)."""
    atoms = lpsc_atoms()
    del atoms[[atom.index for atom in atoms if atom.symbol == 'Cl']]
    return atoms


def test_protocol_builder(fake_pw, pseudo_family):
    builder = builder_for(fake_pw, [lpsc_atoms(), rattled(lpsc_atoms(), 3)], family=pseudo_family)
    assert sorted(builder.configurations) == ['c0000', 'c0001']
    assert builder.max_concurrent.value == 2
    assert builder.max_failed_fraction.value == 0.1
    assert builder.pseudo_family.value == pseudo_family
    settings = builder.dft_settings.get_dict()  # resolved on the client: the values that will run
    assert settings['ecutwfc'] == FAST_OVERRIDES['ecutwfc']
    assert settings['conv_thr_per_atom'] == FAST_OVERRIDES['conv_thr_per_atom']
    assert settings['parameters']['CONTROL']['tprnfor'] is True
    hse = ReferenceDataWorkChain.get_builder_from_protocol(
        fake_pw, [], 'hse06', protocol='fast', dft_protocol='precise'
    )
    assert hse.dft_settings['kpoints_spacing'] == 0.4  # the precise DFT settings
    assert hse.dft_settings['parameters']['SYSTEM']['input_dft'] == 'hse'
    assert hse.max_concurrent.value == 2  # the fast reference protocol
    with pytest.raises(ValueError, match='unknown protocol'):
        ReferenceDataWorkChain.get_builder_from_protocol(fake_pw, [], 'pbe', protocol='ultra')
    with pytest.raises(ValueError, match='unknown engine argument'):
        ReferenceDataWorkChain.get_builder_from_protocol(fake_pw, [], 'pbe', potcar='x')


def bad_inputs(code, family):
    """(description, builder changes, expected message) of inputs that must be refused at submission."""
    slab = lpsc_atoms()
    slab.pbc = (True, True, False)
    crowded = lpsc_atoms()
    crowded.positions[1] = crowded.positions[0] + [0.2, 0.0, 0.0]
    cerium = lpsc_atoms()
    cerium[0].symbol = 'Ce'  # in neither the test family nor the full offline set
    other_code = orm.InstalledCode(
        label='not-pw',
        computer=code.computer,
        filepath_executable='/bin/true',
        default_calc_job_plugin='core.arithmetic.add',
    ).store()
    return [
        ('unknown engine', {'engine': orm.Str('cp2k')}, "unknown DFT engine 'cp2k'"),
        ('unknown functional', {'functional': orm.Str('b3lyp')}, "unknown functional 'b3lyp'"),
        ('no configuration', {'configurations': {}}, 'no configuration given'),
        ('non-periodic', {'configurations': {'slab': structure(slab)}}, 'not periodic in 3D'),
        ('overlapping atoms', {'configurations': {'crowded': structure(crowded)}}, 'overlap'),
        ('element missing from the family', {'configurations': {'ce': structure(cerium)}}, 'no pseudopotential for Ce'),
        ('missing family', {'pseudo_family': orm.Str('no-such-family')}, "no pseudopotential family 'no-such-family'"),
        ('missing code', {'code': None}, 'no code given'),
        ('code of another plugin', {'code': other_code}, 'needs a quantumespresso.pw code'),
        ('vasp input for qe', {'potential_family': orm.Str('PBE.54')}, 'potential_family is not an input of engine'),
        ('bad setting', {'dft_settings': orm.Dict({'ecutwfcc': 20})}, "unknown setting keys ['ecutwfcc']"),
        ('max_concurrent', {'max_concurrent': orm.Int(0)}, 'max_concurrent must be at least 1'),
        ('max_failed_fraction', {'max_failed_fraction': orm.Float(1.5)}, 'max_failed_fraction must be in [0, 1]'),
    ]


def test_bad_inputs_are_refused_at_submission(fake_pw, pseudo_family):
    for description, changes, message in bad_inputs(fake_pw, pseudo_family):
        builder = builder_for(fake_pw, [lpsc_atoms()], family=pseudo_family)
        for key, value in changes.items():
            if value is None:
                del builder[key]
            elif key == 'configurations':
                builder.configurations = value
            else:
                builder[key] = value
        with pytest.raises(ValueError, match='validating') as caught:
            run_get_node(builder)
        assert message in str(caught.value), f'{description}: {caught.value}'


@pytest.mark.engines
@pytest.mark.daemon
def test_reference_chain_through_the_daemon(qe_code, pseudo_family, submit_and_await):
    """Two configurations, one at a time (a window of 1), through submit + the daemon → TrainingSet ← pw CalcJobs."""
    atoms = [rattled(lpsc_atoms(), seed) for seed in (10, 11)]
    builder = builder_for(qe_code, atoms, family=pseudo_family, max_concurrent=1)
    node = submit_and_await(builder, timeout=900)
    assert node.is_finished_ok, f'{node.exit_status}: {node.exit_message}'

    training_set = node.outputs.training_set
    assert isinstance(training_set, TrainingSet)
    assert (training_set.n_structures, training_set.functional, training_set.engine) == (2, 'pbe', 'qe')
    assert training_set.has_stress
    summary = node.outputs.summary.get_dict()
    assert (summary['n_succeeded'], summary['n_failed'], summary['failed']) == (2, 0, {})
    for computed in training_set.get_atoms():
        assert np.all(np.isfinite(computed.get_forces()))
        assert abs(computed.get_potential_energy()) > 100

    # Lineage: TrainingSet ← collect_training_set ← output_parameters ← PwCalculation (QueryBuilder walk).
    query = orm.QueryBuilder()
    query.append(TrainingSet, filters={'id': training_set.pk}, tag='training_set')
    query.append(
        orm.CalcFunctionNode, with_outgoing='training_set', tag='collect', project=['attributes.process_label']
    )
    query.append(orm.Dict, with_outgoing='collect', tag='parameters')
    query.append(orm.CalcJobNode, with_outgoing='parameters', project=['id', 'process_type'])
    rows = query.all()
    assert len(rows) == 2
    assert {row[0] for row in rows} == {'collect_training_set'}
    assert {row[2] for row in rows} == {'aiida.calculations:quantumespresso.pw'}
    structures = {orm.load_node(row[1]).inputs.structure.uuid for row in rows}
    assert structures == {builder.configurations[name].uuid for name in builder.configurations}
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert 'submitted 1 single points (1 queued)' in report
    assert 'submitted 1 single points (0 queued)' in report
    single_points = [called for called in node.called if isinstance(called, orm.WorkChainNode)]
    first, second = sorted(single_points, key=lambda called: called.ctime)
    assert second.ctime >= first.mtime, 'the window of 1 started the second single point before the first ended'


@pytest.mark.engines
def test_failed_configurations_are_tolerated_then_fatal(qe_code, pseudo_family):
    """One of two configurations fails (odd electron count, fixed occupations): tolerated at 0.5, reported by pk;
    alone with the default 0.1 it is exit code 401 and no TrainingSet."""
    good, bad = rattled(lpsc_atoms(), 20), odd_electron_cell()
    builder = builder_for(qe_code, [good, bad], family=pseudo_family, max_failed_fraction=0.5)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, f'{node.exit_status}: {node.exit_message}'
    assert results['training_set'].n_structures == 1
    summary = results['summary'].get_dict()
    assert summary['n_failed'] == 1
    failed = summary['failed']['c0001']
    assert orm.load_node(failed['pk']).process_label == 'MlffdiffPwBaseWorkChain'
    report = '\n'.join(log.message for log in orm.Log.collection.get_logs_for(node))
    assert f'c0001 (pk {failed["pk"]})' in report

    builder = builder_for(qe_code, [bad], family=pseudo_family)
    results, node = run_get_node(builder)
    assert node.exit_status == ReferenceDataWorkChain.exit_codes.ERROR_TOO_MANY_FAILED.status
    assert 'training_set' not in results
    assert results['summary'].get_dict()['n_failed'] == 1
