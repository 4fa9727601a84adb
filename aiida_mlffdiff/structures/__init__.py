"""Shipped reference structures built by code, with their source: ordered Li6PS5Cl models (with their Li-site rule)
and α-Li3N."""

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
from .nitride import A_LI3N_A, C_LI3N_A, LI3N_CHARGES, li3n, li3n_structure

__all__ = (
    'A_EXPERIMENTAL_A',
    'A_LI3N_A',
    'A_PBE_A',
    'C_LI3N_A',
    'FCC_REPEAT_RULE',
    'LI3N_CHARGES',
    'LI_SITE_RULE',
    'conventional_li_sites',
    'ewald_energy',
    'ewald_matrix',
    'li3n',
    'li3n_structure',
    'li6ps5cl',
    'li6ps5cl_structure',
    'li_pairs',
    'li_site_energies',
)
