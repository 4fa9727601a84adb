"""Calcfunctions of aiida-mlffdiff: every output links back to its inputs."""

from .arrhenius import fit_arrhenius
from .diffusion import compute_diffusion
from .msd import msd_from_trajectories
from .split import split_training_set

__all__ = ('compute_diffusion', 'fit_arrhenius', 'msd_from_trajectories', 'split_training_set')
