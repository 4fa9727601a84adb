"""The ``aiida-mlffdiff`` command line: verdi-style options, ``--profile`` to pick the AiiDA profile."""

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import options, types


@click.group('aiida-mlffdiff', cls=VerdiCommandGroup, context_settings={'help_option_names': ['-h', '--help']})
@options.PROFILE(type=types.ProfileParamType(load_profile=True), expose_value=False)
def cmd_root():
    """Li-ion diffusion from MLFF molecular dynamics, with AiiDA provenance from trajectories to D(T)."""


from . import analyze, arrhenius, demo, launch, plan, plot, report, setup  # noqa: E402 (commands register themselves on cmd_root)

__all__ = ('analyze', 'arrhenius', 'cmd_root', 'demo', 'launch', 'plan', 'plot', 'report', 'setup')
