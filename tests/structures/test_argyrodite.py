"""Shipped Li6PS5Cl models: composition, geometry, the Li-site rule (Ewald, checked against pymatgen), records."""

import itertools

import numpy as np
import pytest

from aiida_mlffdiff.structures import (
    A_EXPERIMENTAL_A,
    FCC_REPEAT_RULE,
    LI_SITE_RULE,
    conventional_li_sites,
    ewald_energy,
    li6ps5cl,
    li6ps5cl_structure,
    li_pairs,
    li_site_energies,
)
from aiida_mlffdiff.structures.argyrodite import (
    FCC_TRANSLATIONS,
    FORMAL_CHARGES,
    LI_48H_XZ,
    MIN_LI_LI_A,
    PRIMITIVE_VECTORS,
    WYCKOFF_48H,
    _frame,
)
from aiida_mlffdiff.structures.ewald import ewald_matrix


def charges(atoms) -> list[float]:
    return [FORMAL_CHARGES[symbol] for symbol in atoms.get_chemical_symbols()]


def pymatgen_ewald(atoms) -> float:
    """pymatgen's EwaldSummation energy (eV) of the formal charges."""
    pytest.importorskip('pymatgen.analysis.ewald')
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.io.ase import AseAtomsAdaptor

    structure = AseAtomsAdaptor.get_structure(atoms)
    structure.add_oxidation_state_by_element({'Li': 1, 'P': 5, 'S': -2, 'Cl': -1})
    return EwaldSummation(structure).total_energy


def primitive_with_li(choice, a_A=10.16):
    """The primitive cell with Li on the 48h sites ``choice`` (indices into WYCKOFF_48H)."""
    from ase import Atoms

    symbols, frame, _, li_sites = _frame(a_A)
    positions = np.vstack([li_sites[list(choice)], frame]) * a_A
    return Atoms(['Li'] * len(choice) + symbols, positions=positions, cell=PRIMITIVE_VECTORS * a_A, pbc=True)


def distances(atoms) -> np.ndarray:
    return atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 1e3


@pytest.mark.parametrize(
    ('cell', 'n_atoms', 'formula'),
    [('primitive', 13, {'Li': 6, 'P': 1, 'S': 5, 'Cl': 1}), ('conventional', 52, {'Li': 24, 'P': 4, 'S': 20, 'Cl': 4})],
)
def test_composition_geometry_and_neutrality(cell, n_atoms, formula):
    atoms = li6ps5cl(cell)
    assert len(atoms) == n_atoms
    symbols = atoms.get_chemical_symbols()
    assert {s: symbols.count(s) for s in formula} == formula
    assert symbols == sorted(symbols, key=('Li', 'P', 'S', 'Cl').index)  # ordered Li, P, S, Cl
    assert sum(charges(atoms)) == 0
    assert all(atoms.pbc)
    d = distances(atoms)
    assert d.min() > MIN_LI_LI_A
    sym = np.array(symbols)
    for p in np.where(sym == 'P')[0]:
        bonds = np.sort(d[p][sym == 'S'])
        np.testing.assert_allclose(bonds[:4], 2.05, atol=1e-6)  # PS4 tetrahedron
        assert bonds[4] > 3.0
    li = sym == 'Li'
    assert d[np.ix_(li, li)].min() > MIN_LI_LI_A
    assert d[li][:, ~li].min() > 2.2  # Li–anion contacts are sensible
    anions = (sym == 'S') | (sym == 'Cl')
    assert d[np.ix_(anions, anions)].min() > 3.2  # no anion–anion contact (S–S in PS4 is 3.35 Å)
    assert d[np.ix_(sym == 'P', li)].min() > 3.0


def test_volumes_and_lattice_parameter():
    primitive, conventional = li6ps5cl('primitive'), li6ps5cl('conventional')
    assert conventional.get_volume() == pytest.approx(10.16**3)
    assert primitive.get_volume() == pytest.approx(conventional.get_volume() / 4)
    experimental = li6ps5cl('conventional', a_A=A_EXPERIMENTAL_A)
    assert experimental.get_volume() == pytest.approx(9.86**3)
    assert distances(experimental).min() == pytest.approx(2.05)  # P–S kept at the experimental lattice parameter


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_framework_is_f43m_and_li_on_48h():
    spglib = pytest.importorskip('spglib')
    atoms = li6ps5cl('conventional')
    framework = atoms[[s != 'Li' for s in atoms.get_chemical_symbols()]]
    cell = (framework.cell[:], framework.get_scaled_positions(), framework.numbers)
    assert spglib.get_spacegroup(cell, symprec=1e-4) == 'F-43m (216)'
    # Li positions are a subset of the 48h orbit generated independently by ASE from the same representative
    from ase.spacegroup import crystal

    orbit = crystal(['Li'], [(LI_48H_XZ[0], LI_48H_XZ[0], LI_48H_XZ[1])], spacegroup=216, cellpar=[1, 1, 1, 90, 90, 90])
    assert len(orbit) == 48
    li = atoms.get_scaled_positions()[[s == 'Li' for s in atoms.get_chemical_symbols()]]
    delta = li[:, None, :] - orbit.get_scaled_positions()[None, :, :]
    delta -= np.round(delta)
    assert np.abs(delta).max(axis=-1).min(axis=1).max() < 1e-9
    # the enumeration covers the 48h orbit: 12 sites × 4 fcc translations
    assert len(WYCKOFF_48H) == 12


def test_ewald_matches_pymatgen():
    for cell in ('primitive', 'conventional'):
        atoms = li6ps5cl(cell)
        assert ewald_energy(atoms.cell[:], atoms.positions, charges(atoms)) == pytest.approx(
            pymatgen_ewald(atoms), abs=1e-5
        )
        assert atoms.info['mlffdiff_ewald_energy_eV'] == pytest.approx(pymatgen_ewald(atoms), abs=1e-5)
    # a skewed cell and another configuration
    atoms = primitive_with_li((2, 3, 6, 7, 10, 11))
    atoms.set_cell(atoms.cell[:] @ np.array([[1.02, 0.03, 0.0], [0.03, 0.97, -0.02], [0.0, -0.02, 1.01]]), True)
    assert ewald_energy(atoms.cell[:], atoms.positions, charges(atoms)) == pytest.approx(
        pymatgen_ewald(atoms), abs=1e-5
    )


def test_ewald_nacl_madelung_constant():
    a = 5.64
    positions = np.array([[0, 0, 0], [0.5, 0.5, 0.5]]) * a  # rock salt in its primitive fcc cell
    energy = ewald_energy(PRIMITIVE_VECTORS * a, positions, [1, -1])
    madelung = -energy * (a / 2) / 14.399645478425668
    assert madelung == pytest.approx(1.747564594633, abs=1e-8)
    with pytest.raises(ValueError, match='not neutral'):
        ewald_energy(PRIMITIVE_VECTORS * a, positions, [1, -2])
    phi = ewald_matrix(PRIMITIVE_VECTORS * a, positions)
    np.testing.assert_allclose(phi, phi.T, atol=1e-10)


def test_li_choice_is_the_ewald_minimum():
    table = li_site_energies()
    assert len(table) == 924  # C(12, 6): no choice has Li closer than 1.8 Å at a = 10.16 Å
    energies = [energy for _, energy in table]
    assert energies == sorted(energies, key=lambda e: round(e, 6))
    choice, minimum = table[0]
    atoms = li6ps5cl('primitive')
    assert atoms.info['mlffdiff_li_sites'] == list(choice)
    assert minimum == pytest.approx(-249.05346, abs=1e-4)
    # independent energies (pymatgen) of the chosen and of other candidates: none is lower
    chosen = pymatgen_ewald(primitive_with_li(choice))
    assert chosen == pytest.approx(minimum, abs=1e-5)
    others = [*list(itertools.combinations(range(12), 6))[::37], table[-1][0]]
    for other in others:
        assert pymatgen_ewald(primitive_with_li(other)) >= chosen - 1e-6
    # the smallest index tuple wins among degenerate (symmetry-equivalent) minima
    degenerate = [c for c, e in table if abs(e - minimum) < 1e-6]
    assert len(degenerate) > 1
    assert choice == min(degenerate)


def test_fcc_repeat_rule():
    choice, energy = li_site_energies()[0]
    atoms = li6ps5cl('conventional', li_rule='fcc-repeat')
    assert atoms.info['mlffdiff_li_sites'] == [12 * t + k for t in range(4) for k in choice]
    assert atoms.info['mlffdiff_li_site_rule'] == FCC_REPEAT_RULE
    assert atoms.info['mlffdiff_ewald_energy_eV'] == pytest.approx(4 * energy)
    assert pymatgen_ewald(atoms) == pytest.approx(4 * energy, abs=1e-4)  # the same crystal as the primitive cell
    assert li6ps5cl('primitive', li_rule='fcc-repeat').info == li6ps5cl('primitive').info


def conventional_energy_model(a_A=10.16):
    """Direct Ewald energy of an occupation vector of the 48 conventional 48h sites (this package's Ewald)."""
    symbols, frame, _, li_sites = _frame(a_A)
    frame = (FCC_TRANSLATIONS[:, None, :] + frame[None, :, :]).reshape(-1, 3)
    li_sites = (FCC_TRANSLATIONS[:, None, :] + li_sites[None, :, :]).reshape(-1, 3)
    phi = ewald_matrix(np.eye(3) * a_A, np.vstack([frame, li_sites]) * a_A)
    frame_charges = [FORMAL_CHARGES[s] for s in symbols * 4]

    def energy(occupation):
        q = np.concatenate([frame_charges, occupation])
        return 0.5 * q @ phi @ q

    return energy


def test_conventional_is_the_exact_pair_minimum():
    choice, minimum = conventional_li_sites()
    atoms = li6ps5cl('conventional')
    assert atoms.info['mlffdiff_li_sites'] == list(choice)
    assert atoms.info['mlffdiff_li_site_rule'] == LI_SITE_RULE
    assert minimum == pytest.approx(-997.31929, abs=1e-4)
    assert atoms.info['mlffdiff_ewald_energy_eV'] == pytest.approx(pymatgen_ewald(atoms), abs=1e-4)
    assert minimum < 4 * li_site_energies()[0][1] - 1.0  # 1.1 eV below the fcc repetition
    pairs = li_pairs()
    assert len(pairs) == 24
    assert sorted(i for pair in pairs for i in pair) == list(range(48))
    assert all((i in choice) != (j in choice) for i, j in pairs)  # one Li per split pair
    energy = conventional_energy_model()
    occupation = np.zeros(48)
    occupation[list(choice)] = 1
    assert energy(occupation) == pytest.approx(minimum, abs=1e-6)
    # no single Li hop to any empty site (pairs broken or not) lowers the energy
    for i in choice:
        for j in set(range(48)) - set(choice):
            hopped = occupation.copy()
            hopped[[i, j]] = [0, 1]
            assert energy(hopped) > minimum - 1e-6
    # random one-per-pair arrangements are not lower
    rng = np.random.default_rng(0)
    for _ in range(300):
        sites = [pair[bit] for pair, bit in zip(pairs, rng.integers(0, 2, size=24), strict=True)]
        random_occupation = np.zeros(48)
        random_occupation[sites] = 1
        assert energy(random_occupation) >= minimum - 1e-6


def test_primitive_pairs_and_li_li_distances():
    assert li_pairs('primitive') == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]
    choice = li_site_energies()[0][0]
    assert all((i in choice) != (j in choice) for i, j in li_pairs('primitive'))
    # at the experimental lattice parameter the pair distance (1.81 Å) is still above the 1.8 Å limit
    atoms = li6ps5cl('conventional', a_A=A_EXPERIMENTAL_A)
    li = [s == 'Li' for s in atoms.get_chemical_symbols()]
    assert distances(atoms)[np.ix_(li, li)].min() > MIN_LI_LI_A


def test_deterministic_and_inversion():
    first, second = li6ps5cl('conventional'), li6ps5cl('conventional')
    assert first.get_chemical_symbols() == second.get_chemical_symbols()
    np.testing.assert_array_equal(first.positions, second.positions)
    assert first.info == second.info
    assert first.info['mlffdiff_site_inversion'] == 0.0

    def swapped_sites(atoms):
        scaled = atoms.get_scaled_positions()
        on_4a = np.all(np.isclose(np.mod(scaled + 1e-9, 0.5), 1e-9, atol=1e-6), axis=1)
        return sorted(
            tuple(np.round(p, 6))
            for p, s, a in zip(scaled, atoms.get_chemical_symbols(), on_4a, strict=True)
            if a and s == 'S'
        )

    half = li6ps5cl('conventional', inversion=0.5, seed=3)
    assert half.get_chemical_formula() == first.get_chemical_formula()
    assert len(swapped_sites(half)) == 2  # two 4a sites carry S
    assert half.info['mlffdiff_site_inversion'] == 0.5
    assert half.info['mlffdiff_li_sites'] == first.info['mlffdiff_li_sites']  # Li of the ordered model
    assert half.info['mlffdiff_ewald_energy_eV'] == pytest.approx(pymatgen_ewald(half), abs=1e-4)
    assert half.info['mlffdiff_ewald_energy_eV'] > first.info['mlffdiff_ewald_energy_eV']
    assert 'seed 3' in half.info['mlffdiff_source']
    assert swapped_sites(half) == swapped_sites(li6ps5cl('conventional', inversion=0.5, seed=3))
    seeds = {tuple(swapped_sites(li6ps5cl('conventional', inversion=0.25, seed=s))) for s in range(8)}
    assert len(seeds) > 1
    full = li6ps5cl('primitive', inversion=1.0)
    assert full.get_chemical_formula() == li6ps5cl('primitive').get_chemical_formula()
    assert len(swapped_sites(full)) == 1


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'cell': 'cubic'}, "cell must be 'primitive' or 'conventional'"),
        ({'a_A': 3.0}, 'a_A must be a lattice parameter'),
        ({'inversion': 1.5}, 'inversion must be a fraction'),
        ({'inversion': 0.3, 'cell': 'conventional'}, 'multiple of 1/4'),
        ({'inversion': 0.5}, 'multiple of 1/1'),
        ({'li_rule': 'random'}, 'li_rule must be one of ewald, fcc-repeat'),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        li6ps5cl(**kwargs)


def test_structure_data_keeps_the_record(aiida_profile):
    from aiida import orm

    structure = li6ps5cl_structure('conventional', inversion=0.25, seed=1)
    assert not structure.is_stored
    structure.store()
    loaded = orm.load_node(structure.pk)
    assert loaded.get_formula() == 'Cl4Li24P4S20'
    attributes = loaded.base.attributes.all
    assert attributes['mlffdiff_li_sites'] == li6ps5cl('conventional').info['mlffdiff_li_sites']
    assert 'Ewald' in attributes['mlffdiff_li_site_rule']
    assert attributes['mlffdiff_site_inversion'] == 0.25
    assert 'F-43m' in attributes['mlffdiff_source']
    # queryable
    found = (
        orm.QueryBuilder()
        .append(orm.StructureData, filters={'attributes.mlffdiff_site_inversion': 0.25, 'id': structure.pk})
        .count()
    )
    assert found == 1
