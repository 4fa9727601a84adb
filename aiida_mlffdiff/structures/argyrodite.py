"""Ordered models of the argyrodite Li6PS5Cl (F-43m, No. 216), built by code from the crystallographic facts.

Setting (origin at 4a): P on 4b (½ ½ ½); S1 on 16e (x x x) around P, x = ½ − 2.05 Å/(√3 a) so that P–S = 2.05 Å
at the requested lattice parameter and the PS4 corners point away from 4d (x = ½ + … would put S1 2.35 Å from
the 4d anion: with that orientation the free anion belongs on 4c); the "free" anion sites 4a (0 0 0, Cl in the
ordered model) and 4d (¾ ¾ ¾, S); Li on 48h (x x z) with x = 0.3148, z = −0.0213 (a representative of the
neutron refinements, x ≈ 0.31, |z| ≈ 0.02). The 48h sites form Li cages around the 4d anion (Li–S2 2.50 Å,
Li–S1 2.55 Å ×2, Li–Cl 2.67 Å at 10.16 Å); half of them are occupied, so an ordered cell must choose.

Li-site rule (:data:`LI_SITE_RULE`): the occupied 48h sites have the lowest Ewald energy of formal charges
(Li +1, P +5, S −2, Cl −1) for the ordered anions, found exactly. Primitive cell: all 924 choices of 6 of its 12
sites (none puts two Li closer than :data:`MIN_LI_LI_A`). Conventional cell: the 48 sites form 24 split pairs
straddling 24g, 1.86 Å apart (:func:`li_pairs`); all 2^24 choices of one Li per pair are evaluated. Ties (the
minima are degenerate by symmetry) go to the smallest sorted index tuple. At a = 10.16 Å the energies are
−249.053 eV (13 atoms) and −997.319 eV (52 atoms); repeating the primitive choice on the fcc translations
(``li_rule='fcc-repeat'``) gives 4 × −249.053 = −996.214 eV, 1.1 eV higher: the lowest 52-atom arrangement is
not a repetition of the 13-atom one.

48h enumeration (``mlffdiff_li_sites``): the 12 coordinates of :data:`WYCKOFF_48H` in the order of the
International Tables (x x z, −x −x z, −x x −z, x −x −z, z x x, z −x −x, −z −x x, −z x −x, x z x, −x z −x,
x −z −x, −x −z x); in the conventional cell, index ``12 t + k`` is coordinate k plus fcc translation t of
(0 0 0), (0 ½ ½), (½ 0 ½), (½ ½ 0).

Lattice parameter: 10.16 Å by default (PBE-like, ≈ 3 % above experiment); the neutron value is 9.86 Å
(:data:`A_EXPERIMENTAL_A`). Fractional coordinates are kept when ``a_A`` changes, except the 16e x (P–S fixed).
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms

from .ewald import ewald_energy, ewald_matrix

if TYPE_CHECKING:
    from aiida.orm import StructureData

#: Lattice parameters (Å): PBE-like default and the experimental (neutron) value.
A_PBE_A, A_EXPERIMENTAL_A = 10.16, 9.86
#: P–S bond length of the PS4 tetrahedron (Å).
P_S_BOND_A = 2.05
#: Free parameters (x, z) of Li on 48h (x x z).
LI_48H_XZ = (0.3148, -0.0213)
#: Li pairs closer than this (Å) are not allowed in an ordered model.
MIN_LI_LI_A = 1.8
#: Formal charges (e) used by the Li-site rule.
FORMAL_CHARGES = {'Li': 1.0, 'P': 5.0, 'S': -2.0, 'Cl': -1.0}
#: The fcc translations of the conventional cell (fractional).
FCC_TRANSLATIONS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
#: Primitive fcc vectors in units of a (rows).
PRIMITIVE_VECTORS = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])

LI_SITE_RULE = (
    'lowest Ewald energy of formal charges (Li+1, P+5, S-2, Cl-1) for the ordered anions (Cl on 4a, S on 4d); '
    'primitive cell: exact over all 924 choices of 6 of its 12 Li 48h sites, none with Li-Li closer than '
    f'{MIN_LI_LI_A} A; conventional cell: exact over all 2^24 choices of one Li per split 48h pair (24 pairs, '
    '1.86 A apart at a = 10.16 A); ties within 1e-6 eV: smallest sorted index tuple'
)
#: The rule of ``li_rule='fcc-repeat'`` (conventional cell only).
FCC_REPEAT_RULE = (
    'the primitive-cell choice (lowest Ewald energy of formal charges Li+1, P+5, S-2, Cl-1 over all 924 choices of 6 '
    'of 12 Li 48h sites for the ordered anions; ties: smallest index tuple) repeated on the 4 fcc translations'
)
LI_RULES = ('ewald', 'fcc-repeat')
SOURCE = (
    'aiida_mlffdiff.structures.argyrodite: ordered Li6PS5Cl model built from F-43m Wyckoff positions (P 4b, S 16e '
    f'with P-S {P_S_BOND_A} A, Cl 4a, S 4d, Li 48h x={LI_48H_XZ[0]} z={LI_48H_XZ[1]} half occupied)'
)


def wyckoff_16e(x: float) -> np.ndarray:
    """The 4 positions of 16e (x x x) without the fcc translations (fractional)."""
    return np.array([[x, x, x], [-x, -x, x], [-x, x, -x], [x, -x, -x]])


def wyckoff_48h(x: float, z: float) -> np.ndarray:
    """The 12 positions of 48h (x x z) without the fcc translations, in the order of the International Tables."""
    return np.array(
        [
            [x, x, z], [-x, -x, z], [-x, x, -z], [x, -x, -z],
            [z, x, x], [z, -x, -x], [-z, -x, x], [-z, x, -x],
            [x, z, x], [-x, z, -x], [x, -z, -x], [-x, -z, x],
        ]
    )  # fmt: skip


#: The 12 48h coordinates of the enumeration (fractional, conventional cell).
WYCKOFF_48H = wyckoff_48h(*LI_48H_XZ)


def _frame(a_A: float) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Framework (symbols, fractional positions) and the 48h candidate sites, without fcc translations.

    Framework order: P (4b), S (16e ×4), Cl (4a), S (4d).
    """
    x_s = 0.5 - P_S_BOND_A / (np.sqrt(3) * a_A)  # the PS4 corners point away from 4d (S1–S2 ≈ 4.2 Å)
    frame = np.vstack([[[0.5, 0.5, 0.5]], wyckoff_16e(x_s), [[0.0, 0.0, 0.0]], [[0.75, 0.75, 0.75]]])
    symbols = ['P', 'S', 'S', 'S', 'S', 'Cl', 'S']
    return symbols, frame, ['Li'] * 12, WYCKOFF_48H.copy()


def _cartesian_cell(cell: str, a_A: float) -> np.ndarray:
    if cell == 'primitive':
        return PRIMITIVE_VECTORS * a_A
    if cell == 'conventional':
        return np.eye(3) * a_A
    raise ValueError(f"cell must be 'primitive' or 'conventional', got {cell!r}.")


def _check_lattice(a_A: float) -> None:
    if isinstance(a_A, bool) or not isinstance(a_A, int | float) or not 8.0 <= a_A <= 12.0:
        raise ValueError(f'a_A must be a lattice parameter in Å between 8 and 12, got {a_A!r}.')


def _li_li_ok(positions: np.ndarray, cell: np.ndarray, minimum: float = MIN_LI_LI_A) -> np.ndarray:
    """Boolean matrix: Li sites i, j may both be occupied (minimum-image distance ≥ ``minimum``)."""
    from ase.geometry import get_distances

    _, distances = get_distances(positions, cell=cell, pbc=True)
    return distances >= minimum


def _energy_model(cell: str, a_A: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Ewald energy of Li occupations n (0/1 per 48h site): ``constant + linear·n + ½ nᵀ quadratic n`` (eV).

    Returns ``(constant, linear, quadratic, li_fractional)`` for the 12 (primitive) or 48 (conventional, index
    ``12 t + k``) candidate sites, with the ordered anions (Cl on 4a, S on 4d).
    """
    frame_symbols, frame, _, li_sites = _frame(a_A)
    n_cells = 1 if cell == 'primitive' else 4
    translations = FCC_TRANSLATIONS[:n_cells]
    frame = np.array([position + translation for translation in translations for position in frame])
    li_sites = np.array([position + translation for translation in translations for position in li_sites])
    frame_charges = np.array([FORMAL_CHARGES[s] for s in frame_symbols * n_cells])
    phi = ewald_matrix(_cartesian_cell(cell, a_A), np.vstack([frame, li_sites]) * a_A)
    n_frame = len(frame)
    constant = 0.5 * frame_charges @ phi[:n_frame, :n_frame] @ frame_charges
    linear = frame_charges @ phi[:n_frame, n_frame:] * FORMAL_CHARGES['Li']
    quadratic = phi[n_frame:, n_frame:] * FORMAL_CHARGES['Li'] ** 2
    return float(constant), linear, quadratic, li_sites


@lru_cache(maxsize=8)
def li_site_energies(a_A: float = A_PBE_A) -> tuple[tuple[tuple[int, ...], float], ...]:
    """Every allowed choice of 6 of the 12 primitive-cell 48h sites and its Ewald energy (eV per 13 atoms).

    Sorted by energy (rounded to 1e-6 eV), then by the index tuple; choices with a Li–Li pair closer than
    :data:`MIN_LI_LI_A` are left out. The first entry is the choice of :data:`LI_SITE_RULE`.
    """
    _check_lattice(a_A)
    constant, linear, quadratic, li_sites = _energy_model('primitive', a_A)
    allowed = _li_li_ok(li_sites * a_A, _cartesian_cell('primitive', a_A))
    results = []
    for choice in itertools.combinations(range(12), 6):
        index = np.array(choice)
        if not allowed[np.ix_(index, index)][~np.eye(6, dtype=bool)].all():
            continue
        energy = constant + linear[index].sum() + 0.5 * quadratic[np.ix_(index, index)].sum()
        results.append((choice, float(energy)))
    results.sort(key=lambda item: (round(item[1], 6), item[0]))
    return tuple(results)


def _bits(n_bits: int) -> np.ndarray:
    """All 2^n_bits 0/1 vectors (rows), most significant bit first: row r is r in binary."""
    return (np.arange(2**n_bits)[:, None] >> np.arange(n_bits - 1, -1, -1)[None, :]) & 1


def li_pairs(cell: str = 'conventional', a_A: float = A_PBE_A) -> list[tuple[int, int]]:
    """The split 48h pairs (i, j), i < j, of the candidate sites: each site's nearest Li site (1.86 Å at 10.16 Å).

    The two sites of a pair straddle a 24g position; in the conventional cell a pair may join different fcc
    translations of the enumeration.
    """
    from ase.geometry import get_distances

    n_cells = 1 if cell == 'primitive' else 4
    li_sites = (FCC_TRANSLATIONS[:n_cells, None, :] + WYCKOFF_48H[None, :, :]).reshape(-1, 3)  # index 12 t + k
    _, distances = get_distances(li_sites * a_A, cell=_cartesian_cell(cell, a_A), pbc=True)
    np.fill_diagonal(distances, np.inf)
    nearest = distances.argmin(axis=1)
    if not np.array_equal(nearest[nearest], np.arange(len(nearest))):
        raise RuntimeError('the 48h sites do not form nearest-neighbour pairs')  # pragma: no cover
    return sorted({(int(min(i, j)), int(max(i, j))) for i, j in enumerate(nearest)})


@lru_cache(maxsize=8)
def conventional_li_sites(a_A: float = A_PBE_A) -> tuple[tuple[int, ...], float]:
    """The lowest-Ewald choice of 24 of the 48 conventional-cell 48h sites with one Li per split pair (eV per cell).

    The 48h sites form 24 pairs (:func:`li_pairs`, 1.86 Å apart at 10.16 Å); one Li per pair gives
    2^24 = 16,777,216 arrangements, all evaluated exactly (energies of the first and last 12 pairs by table, their
    cross terms by matrix products). Ties within 1e-6 eV: the smallest sorted index tuple. Returns
    ``(sorted site indices, energy)``.
    """
    _check_lattice(a_A)
    constant, linear, quadratic, li_sites = _energy_model('conventional', a_A)
    pairs = np.array(li_pairs('conventional', a_A))
    n_pairs = len(pairs)
    # occupations n = n0 + D b: n0 puts every pair's Li on its first site, b_k = 1 moves it to the second
    n0 = np.zeros(48)
    n0[pairs[:, 0]] = 1.0
    shift = np.zeros((48, n_pairs))
    shift[pairs[:, 0], np.arange(n_pairs)] = -1.0
    shift[pairs[:, 1], np.arange(n_pairs)] = 1.0
    energy0 = constant + linear @ n0 + 0.5 * n0 @ quadratic @ n0
    field = shift.T @ (linear + quadratic @ n0)  # E = energy0 + field·b + ½ bᵀ J b
    coupling = shift.T @ quadratic @ shift
    half = n_pairs // 2
    bits = ((np.arange(2**half)[:, None] >> np.arange(half)[None, :]) & 1).astype(float)
    head = bits @ field[:half] + 0.5 * np.einsum('ri,ij,rj->r', bits, coupling[:half, :half], bits)
    tail = bits @ field[half:] + 0.5 * np.einsum('ri,ij,rj->r', bits, coupling[half:, half:], bits)
    cross = bits @ coupling[:half, half:]

    def blocks():
        for start in range(0, len(bits), 512):
            yield start, head[start : start + 512, None] + tail[None, :] + cross[start : start + 512] @ bits.T

    best = min(block.min() for _, block in blocks())
    candidates = []
    for start, block in blocks():
        for row, column in zip(*np.nonzero(block <= best + 1e-6), strict=True):
            b = np.concatenate([bits[start + row], bits[column]]).astype(int)
            candidates.append(tuple(sorted(int(pairs[k, b[k]]) for k in range(n_pairs))))
    choice = min(candidates)
    occupation = np.zeros(48)
    occupation[list(choice)] = 1.0
    energy = constant + linear @ occupation + 0.5 * occupation @ quadratic @ occupation
    if abs(energy - (energy0 + best)) > 1e-6:  # pragma: no cover
        raise RuntimeError('the pair enumeration disagrees with the direct Ewald energy')
    if not _li_li_ok(li_sites[list(choice)] * a_A, _cartesian_cell('conventional', a_A))[
        ~np.eye(n_pairs, dtype=bool)
    ].all():
        raise ValueError(f'no ordered Li arrangement keeps Li {MIN_LI_LI_A} Å apart at a = {a_A} Å.')
    return choice, float(energy)


def li6ps5cl(
    cell: str = 'primitive',
    a_A: float = A_PBE_A,
    inversion: float = 0.0,
    seed: int = 0,
    li_rule: str = 'ewald',
) -> Atoms:
    """An ordered Li6PS5Cl cell as ASE Atoms (Å), periodic; see the module docstring for the model and Li rule.

    :param cell: ``'primitive'`` (fcc, 13 atoms Li6PS5Cl) or ``'conventional'`` (cubic, 52 atoms Li24P4S20Cl4).
    :param a_A: cubic lattice parameter (Å, 8–12); 10.16 (PBE-like) by default, 9.86 is experimental.
    :param inversion: fraction of the 4a/4d anion pairs whose S and Cl are swapped (0 = ordered); a multiple of 1/4
        for the conventional cell, 0 or 1 for the primitive one. The Li sites stay those of the ordered model.
    :param seed: which 4a/4d sites are swapped when 0 < inversion < 1 (numpy ``default_rng(seed)``).
    :param li_rule: ``'ewald'`` (:data:`LI_SITE_RULE`, the lowest Ewald energy of the requested cell) or
        ``'fcc-repeat'`` (:data:`FCC_REPEAT_RULE`: the conventional cell repeats the primitive choice; the same as
        ``'ewald'`` for the primitive cell).
    :returns: Atoms ordered Li, P, S, Cl; ``info`` holds ``mlffdiff_li_sites``, ``mlffdiff_li_site_rule``,
        ``mlffdiff_site_inversion``, ``mlffdiff_source`` and ``mlffdiff_ewald_energy_eV`` (Ewald energy of the formal
        charges of the returned cell, eV per cell).
    """
    _check_lattice(a_A)
    lattice = _cartesian_cell(cell, a_A)
    n_cells = 1 if cell == 'primitive' else 4
    if li_rule not in LI_RULES:
        raise ValueError(f'li_rule must be one of {", ".join(LI_RULES)}, got {li_rule!r}.')
    if isinstance(inversion, bool) or not isinstance(inversion, int | float) or not 0 <= inversion <= 1:
        raise ValueError(f'inversion must be a fraction between 0 and 1, got {inversion!r}.')
    n_swapped = inversion * n_cells
    if abs(n_swapped - round(n_swapped)) > 1e-9:
        raise ValueError(f'inversion must be a multiple of 1/{n_cells} for the {cell} cell, got {inversion!r}.')
    n_swapped = round(n_swapped)

    frame_symbols, frame, _, li_sites = _frame(a_A)
    translations = FCC_TRANSLATIONS[:n_cells]
    if cell == 'conventional' and li_rule == 'ewald':
        li_indices, energy = conventional_li_sites(float(a_A))
        rule = LI_SITE_RULE
    else:
        choice, energy = li_site_energies(float(a_A))[0]
        li_indices = tuple(12 * t + k for t in range(n_cells) for k in choice)
        energy *= n_cells
        rule = LI_SITE_RULE if cell == 'primitive' else FCC_REPEAT_RULE
    li = np.array([li_sites[i % 12] + translations[i // 12] for i in li_indices])
    framework = np.array([position + translation for translation in translations for position in frame])
    framework_symbols = frame_symbols * n_cells
    # swap S/Cl on n_swapped of the 4a (Cl) and 4d (S) sites
    cl_4a = [i for i, s in enumerate(framework_symbols) if s == 'Cl']
    s_4d = [i for i, position in enumerate(framework) if np.allclose((position - 0.75) % 0.5, 0.0)]
    rng = np.random.default_rng(seed)
    swapped_4a = sorted(int(i) for i in rng.choice(len(cl_4a), n_swapped, replace=False))
    swapped_4d = sorted(int(i) for i in rng.choice(len(s_4d), n_swapped, replace=False))
    for i in swapped_4a:
        framework_symbols[cl_4a[i]] = 'S'
    for i in swapped_4d:
        framework_symbols[s_4d[i]] = 'Cl'

    symbols = ['Li'] * len(li) + framework_symbols
    scaled = np.vstack([li, framework]) * a_A @ np.linalg.inv(lattice)
    order = sorted(range(len(symbols)), key=lambda i: ('Li', 'P', 'S', 'Cl').index(symbols[i]))  # stable
    atoms = Atoms([symbols[i] for i in order], scaled_positions=np.mod(scaled[order], 1.0), cell=lattice, pbc=True)
    atoms.wrap(eps=1e-9)
    if n_swapped:  # the energy of the cell as returned, with its swapped anions
        energy = ewald_energy(atoms.cell[:], atoms.positions, [FORMAL_CHARGES[s] for s in atoms.get_chemical_symbols()])
    atoms.info.update(
        mlffdiff_li_sites=list(li_indices),
        mlffdiff_li_site_rule=rule,
        mlffdiff_site_inversion=float(inversion),
        mlffdiff_source=SOURCE
        + f', a = {a_A} A, {cell} cell'
        + (f', S/Cl swapped on {n_swapped} 4a/4d pair(s) chosen with seed {seed}' if n_swapped else ''),
        mlffdiff_ewald_energy_eV=float(energy),
    )
    return atoms


def li6ps5cl_structure(
    cell: str = 'primitive',
    a_A: float = A_PBE_A,
    inversion: float = 0.0,
    seed: int = 0,
    li_rule: str = 'ewald',
) -> StructureData:
    """The :func:`li6ps5cl` cell as an unstored ``StructureData`` that records the model in its attributes.

    Attributes (kept when the node is stored): ``mlffdiff_li_sites`` (occupied 48h indices, see the module
    docstring), ``mlffdiff_li_site_rule`` (text), ``mlffdiff_site_inversion`` (fraction of 4a/4d pairs with S/Cl
    swapped, 0.0 = ordered), ``mlffdiff_source`` (text) and ``mlffdiff_ewald_energy_eV`` (Ewald energy of the
    formal charges, eV per cell). Same arguments as :func:`li6ps5cl`.
    """
    from .nodes import as_structure_data

    return as_structure_data(li6ps5cl(cell=cell, a_A=a_A, inversion=inversion, seed=seed, li_rule=li_rule))
