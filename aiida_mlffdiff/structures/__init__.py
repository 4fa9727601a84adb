"""Shipped reference structures: ordered Li6PS5Cl models built by code, with their Li-site rule and source."""

from .argyrodite import (
    A_EXPERIMENTAL_A,
    A_PBE_A,
    FCC_REPEAT_RULE,
    LI_SITE_RULE,
    conventional_li_sites,
    li6ps5cl,
    li6ps5cl_structure,
    li_pairs,
    li_site_energies,
)
from .ewald import ewald_energy, ewald_matrix

__all__ = (
    'A_EXPERIMENTAL_A',
    'A_PBE_A',
    'FCC_REPEAT_RULE',
    'LI_SITE_RULE',
    'conventional_li_sites',
    'ewald_energy',
    'ewald_matrix',
    'li6ps5cl',
    'li6ps5cl_structure',
    'li_pairs',
    'li_site_energies',
)
