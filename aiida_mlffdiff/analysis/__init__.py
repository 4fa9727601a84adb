"""Diffusion analysis core: pure numpy/scipy, no AiiDA import.

Units used throughout: positions in Å, times in ps, MSD in Å², diffusion coefficients in cm²/s
(converted from Å²/ps by :data:`~aiida_mlffdiff.analysis.units.A2_PER_PS_TO_CM2_PER_S`), temperatures
in K, energies in eV, conductivities in mS/cm.
"""

from .arrhenius import ArrheniusFit, fit_arrhenius
from .conductivity import haven_ratio, nernst_einstein_conductivity
from .einstein import EinsteinFit, auto_fit_window, fit_einstein, loglog_slope
from .ensemble import DiffusionEstimate, estimate_diffusion
from .errors import AnalysisError
from .msd import collective_msd, ensemble_tracer_msd, tracer_msd
from .resolution import arrhenius_unresolved, d_unresolved
from .trajectory import MsdResult, msd_from_positions
from .unwrap import framework_drift, remove_framework_drift, unwrap_positions

__all__ = (
    'AnalysisError',
    'ArrheniusFit',
    'DiffusionEstimate',
    'EinsteinFit',
    'MsdResult',
    'arrhenius_unresolved',
    'auto_fit_window',
    'collective_msd',
    'd_unresolved',
    'ensemble_tracer_msd',
    'estimate_diffusion',
    'fit_arrhenius',
    'fit_einstein',
    'framework_drift',
    'haven_ratio',
    'loglog_slope',
    'msd_from_positions',
    'nernst_einstein_conductivity',
    'remove_framework_drift',
    'tracer_msd',
    'unwrap_positions',
)
