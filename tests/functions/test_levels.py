"""Reference-quality levels: align label sets of the same configurations, compare a cheap level's labels."""

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_mlffdiff.data import TrainingSet
from aiida_mlffdiff.functions.exit_codes import EXIT_CODES
from aiida_mlffdiff.functions.levels import HISTOGRAM_EDGES_MEV_A, align_training_sets, compare_labels


def labelled_copy(atoms, *, li_shift=0.0, energy_shift=0.0):
    copy = atoms.copy()
    forces = atoms.get_forces().copy()
    forces[np.array(copy.get_chemical_symbols()) == 'Li', 0] += li_shift
    copy.arrays.pop('REF_forces', None)  # explicit labels would win over the calculator's
    copy.info.pop('REF_energy', None)
    copy.info.pop('REF_stress', None)
    copy.calc = SinglePointCalculator(
        copy,
        energy=atoms.get_potential_energy() + energy_shift,
        forces=forces,
        stress=atoms.calc.results['stress'],
    )
    return copy


def test_compare_labels_errors_per_species_and_histograms(make_training_set):
    converged = make_training_set(n=6, seed=11)
    atoms_list = converged.get_atoms()
    cheap = TrainingSet.from_atoms(
        [labelled_copy(a, li_shift=0.02, energy_shift=0.5) for a in atoms_list], functional='lj-test'
    )
    cheap.base.attributes.set('reference_level', 'gamma')
    cheap.store()
    result, node = compare_labels.run_get_node(reference=converged, other=cheap)
    assert node.is_finished_ok, node.exit_message
    metrics = result['metrics'].get_dict()
    per_species = metrics['force_rmse_per_species_meV_A']
    assert per_species['Li'] == pytest.approx(20.0 / np.sqrt(3), rel=1e-6)  # one of three components off by 20
    assert all(value == pytest.approx(0.0, abs=1e-9) for symbol, value in per_species.items() if symbol != 'Li')
    n_atoms = np.array([len(a) for a in atoms_list])
    assert metrics['energy_offset_meV_atom'] == pytest.approx(np.mean(500.0 / n_atoms))
    assert metrics['level'] == 'gamma'
    histograms = result['histograms']
    assert np.array_equal(histograms.get_array('edges_meV_A'), HISTOGRAM_EDGES_MEV_A)
    n_li = sum(a.get_chemical_symbols().count('Li') for a in atoms_list)
    assert histograms.get_array('counts_Li').sum() == 3 * n_li
    assert histograms.get_array('counts_all').sum() == 3 * n_atoms.sum()
    li_bin = np.searchsorted(HISTOGRAM_EDGES_MEV_A, 20.0) - 1
    assert histograms.get_array('counts_Li')[li_bin] == n_li  # the shifted x components, all in the 20 meV/Å bin


def test_align_keeps_the_common_configurations_in_one_order(make_training_set):
    converged = make_training_set(n=8, seed=12)
    atoms_list = converged.get_atoms()
    # the cheap level lost configurations 2 and 5 (their DFT failed) and lists the rest in reverse order
    kept = [labelled_copy(atoms_list[i], li_shift=0.01) for i in (7, 6, 4, 3, 1, 0)]
    cheap = TrainingSet.from_atoms(kept, functional='lj-test').store()
    result, node = align_training_sets.run_get_node(converged=converged, gamma=cheap)
    assert node.is_finished_ok, node.exit_message
    assert result['converged'].parent_indices == [0, 1, 3, 4, 6, 7]
    assert result['gamma'].parent_indices == [5, 4, 3, 2, 1, 0]
    _, compared = compare_labels.run_get_node(reference=result['converged'], other=result['gamma'])
    assert compared.is_finished_ok  # aligned: the same configurations in the same order
    _, unaligned = compare_labels.run_get_node(reference=converged, other=cheap)
    assert unaligned.exit_status == EXIT_CODES['ERROR_INVALID_PARAMETERS'][0]
    few = TrainingSet.from_atoms(kept[:2], functional='lj-test').store()
    _, node = align_training_sets.run_get_node(converged=converged, gamma=few)
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_PARAMETERS'][0]
    assert 'only 2 configuration(s) were labelled at every level' in node.exit_message
