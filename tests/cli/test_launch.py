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
    before = n_studies()
    assert message in cli.fails('launch', 'study', *arguments)
    assert n_studies() == before


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
