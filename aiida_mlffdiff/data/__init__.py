"""AiiDA data plugins of aiida-mlffdiff."""

from .msd import MsdData

__all__ = ('MsdData',)
