"""Shipped reference structures built by code, with their source: ordered Li6PS5Cl models (with their Li-site rule),
α-Li3N, antifluorite Li2S and tetragonal Na3PS4."""

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
from .sodium import A_NA3PS4_A, C_NA3PS4_A, NA3PS4_CHARGES, na3ps4, na3ps4_structure
from .sulfide import A_LI2S_A, LI2S_CHARGES, li2s, li2s_structure

__all__ = (
    'A_EXPERIMENTAL_A',
    'A_LI2S_A',
    'A_LI3N_A',
    'A_NA3PS4_A',
    'A_PBE_A',
    'C_LI3N_A',
    'C_NA3PS4_A',
    'FCC_REPEAT_RULE',
    'LI2S_CHARGES',
    'LI3N_CHARGES',
    'LI_SITE_RULE',
    'NA3PS4_CHARGES',
    'conventional_li_sites',
    'ewald_energy',
    'ewald_matrix',
    'li2s',
    'li2s_structure',
    'li3n',
    'li3n_structure',
    'li6ps5cl',
    'li6ps5cl_structure',
    'li_pairs',
    'li_site_energies',
    'na3ps4',
    'na3ps4_structure',
)
