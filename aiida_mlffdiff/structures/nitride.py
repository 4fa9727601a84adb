"""α-Li3N (P6/mmm, No. 191), the classic fast Li-ion conductor, built by code from the published structure.

Rabenau & Schulz, J. Less-Common Met. 50, 155 (1976): hexagonal, a = 3.648 Å, c = 3.875 Å; N on 1a (0 0 0), Li(1)
on 1b (0 0 ½) between the Li2N layers, Li(2) on 2c (⅓ ⅔ 0), (⅔ ⅓ 0) in them. Every site is fully occupied and
fixed by symmetry (no free coordinates), so the cell needs no ordering rule: Li(2)–N = a/√3 = 2.106 Å, Li(1)–N =
c/2 = 1.938 Å. Li moves mainly within the Li2N layers (a vacancy mechanism on Li(2)). Formal charges Li +1, N −3.

Why this second material: it shares nothing with Li6PS5Cl (nitride, hexagonal, mobile ion also in the framework
layers), and its 16-atom 2×2×1 cell is cheaper for DFT than the 13-atom argyrodite (1.1 s against 1.9 s for one Γ
SCF at 25 Ry on 2 cores, measured), so a whole study over it fits a test. An ordered LGPS (50 atoms, Ge with 3d
semicore) or Li3YCl6 (30 atoms, Y with 4s4p) cell costs tens of times more per SCF and is not a CI test here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

if TYPE_CHECKING:
    from aiida.orm import StructureData

#: Lattice parameters of α-Li3N (Å), Rabenau & Schulz (1976).
A_LI3N_A, C_LI3N_A = 3.648, 3.875
#: Formal charges (e).
LI3N_CHARGES = {'Li': 1.0, 'N': -3.0}
LI3N_SOURCE = (
    'aiida_mlffdiff.structures.nitride: alpha-Li3N, P6/mmm (191), N 1a (0 0 0), Li(1) 1b (0 0 1/2), Li(2) 2c '
    '(1/3 2/3 0) (2/3 1/3 0), all fully occupied; A. Rabenau, H. Schulz, J. Less-Common Met. 50, 155 (1976)'
)


def li3n(supercell: tuple[int, int, int] = (2, 2, 1), a_A: float = A_LI3N_A, c_A: float = C_LI3N_A) -> Atoms:
    """α-Li3N as ASE Atoms (Å, periodic), repeated ``supercell`` times; Li first, then N.

    :param supercell: repetitions along a, b, c (the 2×2×1 default: 16 atoms, 7.30 × 7.30 × 3.875 Å).
    :param a_A: hexagonal lattice parameter a (Å, 3–4.5).
    :param c_A: lattice parameter c (Å, 3–4.5).
    :raises ValueError: a repetition that is not a positive integer, or a lattice parameter out of range.
    """
    if len(supercell) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in supercell):
        raise ValueError(f'supercell must be three positive integers, got {supercell!r}.')
    for name, value in (('a_A', a_A), ('c_A', c_A)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 3.0 <= value <= 4.5:
            raise ValueError(f'{name} must be a lattice parameter in Å between 3 and 4.5, got {value!r}.')
    cell = [[a_A, 0.0, 0.0], [-a_A / 2, a_A * np.sqrt(3) / 2, 0.0], [0.0, 0.0, c_A]]
    sites = [('Li', (0.0, 0.0, 0.5)), ('Li', (1 / 3, 2 / 3, 0.0)), ('Li', (2 / 3, 1 / 3, 0.0)), ('N', (0.0, 0.0, 0.0))]
    unit = Atoms([s for s, _ in sites], scaled_positions=[p for _, p in sites], cell=cell, pbc=True)
    atoms = unit.repeat(tuple(int(n) for n in supercell))
    order = np.argsort([0 if s == 'Li' else 1 for s in atoms.get_chemical_symbols()], kind='stable')
    atoms = atoms[order]
    atoms.info.update(
        mlffdiff_source=LI3N_SOURCE + f', a = {a_A} A, c = {c_A} A, {"x".join(map(str, supercell))} supercell',
        mlffdiff_formal_charges=dict(LI3N_CHARGES),
    )
    return atoms


def li3n_structure(
    supercell: tuple[int, int, int] = (2, 2, 1), a_A: float = A_LI3N_A, c_A: float = C_LI3N_A
) -> StructureData:
    """The :func:`li3n` cell as an unstored ``StructureData`` with ``mlffdiff_source`` and
    ``mlffdiff_formal_charges`` in its attributes."""
    from .nodes import as_structure_data

    return as_structure_data(li3n(supercell, a_A, c_A))
