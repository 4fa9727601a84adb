"""``aiida-mlffdiff setup``: build the engine environments and register them as codes of the current profile."""

from __future__ import annotations

import click
from aiida.cmdline.utils import decorators, echo

from ..environments import ENGINES, EngineEnvironmentError, build_environment, register_codes
from ..environments.dft_codes import QeCodeError, register_qe_code
from ..environments.manager import environment_root
from ..environments.pseudos import DEFAULT_PSEUDO_FAMILY, PseudoInstallError, install_pseudo_family
from . import cmd_root


def parse_engines(value: str) -> list[str]:
    """Comma-separated engine names → list, refusing unknown ones."""
    names = [name.strip() for name in value.split(',') if name.strip()]
    unknown = sorted(set(names) - set(ENGINES))
    if unknown or not names:
        raise click.BadParameter(
            f'unknown engine(s) {", ".join(unknown) or "(none given)"}; choose from {", ".join(ENGINES)}.'
        )
    return names


@cmd_root.command('setup')
@click.option('-e', '--engines', default='mace,nequip,deepmd', show_default=True, help=f'Any of {", ".join(ENGINES)}.')
@click.option(
    '-Y', '--computer', 'computer_label', default='localhost', show_default=True, help='Computer to register on.'
)
@click.option('--no-codes', is_flag=True, help='Only build the environments, register no code.')
@click.option(
    '--pseudos/--no-pseudos',
    default=True,
    show_default=True,
    help='Install the offline norm-conserving PBE pseudopotential family for Quantum ESPRESSO (reused if present).',
)
@click.option(
    '--pseudo-family',
    default=DEFAULT_PSEUDO_FAMILY,
    show_default=True,
    help='Label of the pseudopotential family to create or reuse.',
)
@decorators.with_dbenv()
def setup(engines, computer_label, no_codes, pseudos, pseudo_family):
    """Build (or reuse) one isolated environment per engine and register its codes.

    Also installs the offline pseudopotential family for Quantum ESPRESSO (--no-pseudos to skip) and registers
    pw.x from PATH as the code mlffdiff-qe-pw (skipped with --no-codes; a warning when pw.x is missing).

    Environments are cached in $MLFFDIFF_ENV_DIR (default ~/.cache/aiida-mlffdiff/envs) under a hash of their
    pinned requirements: re-running is cheap and safe. On an HPC machine, register codes with
    `verdi code create core.code.installed --config code.yaml` instead (see docs/codes.md).
    """
    # Everything that can be refused is checked before anything is installed or stored.
    try:
        names = parse_engines(engines)
    except click.BadParameter as exception:
        echo.echo_critical(f'--engines: {exception.message}')
    if not no_codes:
        from aiida import orm
        from aiida.common.exceptions import NotExistent

        try:
            orm.load_computer(computer_label)
        except NotExistent:
            echo.echo_critical(
                f'no computer {computer_label!r} in this profile: create it (`verdi presto` makes localhost, or '
                '`verdi computer setup`), choose another with -Y, or build the environments only with --no-codes.'
            )
    if pseudos:
        try:
            install_pseudo_family(pseudo_family, log=echo.echo_report)
        except PseudoInstallError as exception:
            echo.echo_critical(str(exception))
    if not no_codes:
        try:
            register_qe_code(computer_label, log=echo.echo_report)
        except QeCodeError as exception:
            echo.echo_warning(f'no Quantum ESPRESSO code registered: {exception}')
    echo.echo_report(f'environments in {environment_root()}')
    for name in names:
        try:
            environment = build_environment(ENGINES[name], log=echo.echo_report)
        except EngineEnvironmentError as exception:
            echo.echo_critical(str(exception))
        state = 'built' if environment.created else 'reused'
        echo.echo_success(
            f'{name}: {state} {environment.path} ({environment.size_mb:.0f} MB, {environment.version}; '
            f'first build took {environment.build_seconds:.0f} s)'
        )
        if not no_codes:
            register_codes(environment, computer_label, log=echo.echo_report)
