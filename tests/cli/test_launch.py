"""``aiida-mlffdiff launch study``: bad input fails with one clear line and launches nothing."""

from __future__ import annotations

import pytest
from aiida import orm


def n_studies() -> int:
    return (
        orm.QueryBuilder()
        .append(orm.WorkflowNode, filters={'attributes.process_label': 'MlffDiffusionStudyWorkChain'})
        .count()
    )


def n_nodes() -> int:
    return orm.QueryBuilder().append(orm.Node).count()


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['--structure', 'no-such-thing', '-T', '600'], 'neither a StructureData'),
        (['--structure', 'li6ps5cl-primitive', '-T', '600,hot'], 'temperatures must be numbers'),
        (['--structure', 'li6ps5cl-primitive', '-T', '600', '--dft-code', 'no-code'], 'no code no-code'),
        (['--structure', 'li6ps5cl-primitive', '-T', '600', '--dft-engine', 'vasp'], '--dft-code is needed'),
        (
            ['--structure', 'li6ps5cl-primitive', '-T', '600', '-a', 'schnet', '-f', '', '--pretrained', ''],
            'unknown architecture(s) schnet',
        ),
    ],
)
def test_bad_input_launches_nothing(cli, aiida_localhost, arguments, message):
    before = n_studies(), n_nodes()
    assert message in cli.fails('launch', 'study', *arguments)
    assert (n_studies(), n_nodes()) == before  # not even the structure is stored


def test_missing_engine_codes_say_how_to_get_them(cli, own_computer):
    computer = own_computer('launch-without-engines')
    orm.InstalledCode(
        label='mlffdiff-qe-pw', computer=computer, filepath_executable='/bin/true',
        default_calc_job_plugin='quantumespresso.pw',
    ).store()  # fmt: skip
    line = cli.fails(
        'launch', 'study', '--structure', 'li6ps5cl-primitive', '-T', '600', '-a', 'mace', '-f', 'pbe',
        '-Y', computer.label,
    )  # fmt: skip
    assert f'aiida-mlffdiff setup --engines mace --computer {computer.label}' in line


def n_processes(label: str) -> int:
    return orm.QueryBuilder().append(orm.ProcessNode, filters={'attributes.process_label': label}).count()


def test_locality_and_scaling_launches_refuse_bad_input(cli, own_computer):
    """A node that is no model, a model without a registered engine code, a radius that is no number: one line
    each, nothing launched."""
    from aiida_mlffdiff.calculations.evaluate import pretrained_model

    computer = own_computer('launch-diagnostics')
    not_a_model = orm.Int(3).store()
    pretrained_model('7net-0')  # the catalogue's node, made once
    before = n_processes('LocalityWorkChain'), n_processes('ScalingWorkChain'), n_nodes()
    line = cli.fails('launch', 'locality', str(not_a_model.pk), '--structure', 'li3n', '-Y', computer.label)
    assert 'is a Int, not an MlffModel' in line
    line = cli.fails('launch', 'locality', '7net-0', '--structure', 'li3n', '-Y', computer.label)
    assert f'no code mlffdiff-pretrained-python@{computer.label}: run `aiida-mlffdiff setup' in line
    line = cli.fails('launch', 'scaling', '7net-0', '--structure', 'li3n', '-Y', computer.label)
    assert 'no code mlffdiff-pretrained-python' in line
    orm.InstalledCode(label='mlffdiff-pretrained-python', computer=computer, filepath_executable='/bin/true').store()
    line = cli.fails('launch', 'locality', '7net-0', '--structure', 'li3n', '--radii', '3,far', '-Y', computer.label)
    assert 'radii must be numbers in Å' in line
    line = cli.fails('launch', 'locality', '7net-0', '--structure', 'li3n', '-Y', computer.label)
    assert 'more than max_atoms 5000' in line  # SevenNet-0's default sweep reaches 2 × 25 Å
    line = cli.fails('launch', 'scaling', '7net-0', '--structure', 'li3n', '--threads', '1,x', '-Y', computer.label)
    assert "--threads takes comma-separated integers, got '1,x'" in line
    line = cli.fails(
        'launch', 'scaling', '7net-0', '--structure', 'li3n', '--replicas-per-batch', '1,4', '-Y', computer.label
    )
    assert "replicas_per_batch needs an engine that batches replicas (torchsim), not 'ase'" in line
    after = n_processes('LocalityWorkChain'), n_processes('ScalingWorkChain'), n_nodes() - 1  # the code stored above
    assert after == before


def test_force_constants_launch_refuses_bad_input(cli, own_computer):
    """A supercell narrower than twice the model cutoff, no pw.x code, a bad amplitude, a non-integer supercell:
    one line each, nothing stored (the shipped Li2S cell stays unstored)."""
    from aiida_mlffdiff.calculations.evaluate import pretrained_model

    computer = own_computer('launch-force-constants')
    pretrained_model('7net-0')
    orm.InstalledCode(label='mlffdiff-pretrained-python', computer=computer, filepath_executable='/bin/true').store()
    before = n_processes('ForceConstantsWorkChain'), n_nodes()
    common = ['launch', 'force-constants', '-s', 'li2s-conventional', '-m', '7net-0', '-Y', computer.label]
    line = cli.fails(*common, '--supercell', '1,1,1', '--no-dft')
    assert 'less than twice the model cutoff (2 × 5 Å)' in line
    assert 'supercell_matrix [2, 2, 2]' in line
    line = cli.fails(*common, '--supercell', '2,2,2')
    assert 'no pw.x code: run `aiida-mlffdiff setup` (' in line
    assert computer.label in line
    line = cli.fails(*common, '--supercell', '2,2,2', '--no-dft', '--distance', '0.5')
    assert 'distance_A must be a displacement between 0.005 and 0.2 Å' in line
    line = cli.fails(*common, '--supercell', '2,2,x', '--no-dft')
    assert "--supercell takes comma-separated integers, got '2,2,x'" in line
    assert (n_processes('ForceConstantsWorkChain'), n_nodes()) == before
