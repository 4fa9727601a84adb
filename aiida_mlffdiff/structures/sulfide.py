"""Li2S (antifluorite, Fm-3m, No. 225), the small high-symmetry Li conductor of the force-constant tests.

Antifluorite: S on 4a (0 0 0), Li on 8c (¼ ¼ ¼) of the cubic cell; every site fully occupied and fixed by symmetry
(no free coordinates), so the forces of the perfect cell vanish at any lattice parameter and the force constants of
any model can be compared with DFT at the same volume without a relaxation. Lattice parameter a = 5.708 Å
(E. Zintl, A. Harder, B. Dauth, Z. Elektrochem. 40, 588 (1934)); Li–S = a√3/4 = 2.472 Å, Li–Li = a/2 = 2.854 Å.
The primitive (fcc) cell holds 3 atoms; the cubic cell 12. Formal charges Li +1, S −2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

if TYPE_CHECKING:
    from aiida.orm import StructureData

#: Cubic lattice parameter of Li2S (Å), Zintl, Harder & Dauth (1934).
A_LI2S_A = 5.708
#: Formal charges (e).
LI2S_CHARGES = {'Li': 1.0, 'S': -2.0}
LI2S_SOURCE = (
    'aiida_mlffdiff.structures.sulfide: Li2S antifluorite, Fm-3m (225), S 4a (0 0 0), Li 8c (1/4 1/4 1/4), all '
    'fully occupied; E. Zintl, A. Harder, B. Dauth, Z. Elektrochem. 40, 588 (1934)'
)


def li2s(cell: str = 'primitive', a_A: float = A_LI2S_A) -> Atoms:
    """Li2S as ASE Atoms (Å, periodic), Li first, then S.

    :param cell: ``'primitive'`` (fcc, 3 atoms) or ``'conventional'`` (cubic, 12 atoms).
    :param a_A: cubic lattice parameter (Å, 5–6.5).
    :raises ValueError: an unknown cell or a lattice parameter out of range.
    """
    if cell not in ('primitive', 'conventional'):
        raise ValueError(f"cell must be 'primitive' or 'conventional', got {cell!r}.")
    if isinstance(a_A, bool) or not isinstance(a_A, int | float) or not 5.0 <= a_A <= 6.5:
        raise ValueError(f'a_A must be a lattice parameter in Å between 5 and 6.5, got {a_A!r}.')
    if cell == 'primitive':
        vectors = 0.5 * a_A * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
        atoms = Atoms(
            ['Li', 'Li', 'S'], scaled_positions=[(0.25, 0.25, 0.25), (0.75, 0.75, 0.75), (0, 0, 0)], cell=vectors,
            pbc=True,
        )  # fmt: skip
    else:
        fcc = np.array([(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)])
        li = [f + shift for f in fcc for shift in (np.full(3, 0.25), np.full(3, 0.75))]
        atoms = Atoms(['Li'] * 8 + ['S'] * 4, scaled_positions=[*li, *fcc], cell=np.eye(3) * a_A, pbc=True)
    atoms.wrap()
    atoms.info.update(
        mlffdiff_source=LI2S_SOURCE + f', a = {a_A} A, {cell} cell', mlffdiff_formal_charges=dict(LI2S_CHARGES)
    )
    return atoms


def li2s_structure(cell: str = 'primitive', a_A: float = A_LI2S_A) -> StructureData:
    """The :func:`li2s` cell as an unstored ``StructureData`` with ``mlffdiff_source`` and
    ``mlffdiff_formal_charges`` in its attributes."""
    from .nodes import as_structure_data

    return as_structure_data(li2s(cell, a_A))
