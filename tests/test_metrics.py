"""``aiida_mlffdiff.metrics`` against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_mlffdiff.metrics import (
    EV_PER_A3_TO_GPA,
    MetricsError,
    energy_errors,
    evaluation_metrics,
    force_errors,
    parity_arrays,
    stress_errors,
)


def test_energy_per_atom_errors():
    # two configurations of 2 and 4 atoms; errors 0.2 eV / 2 = +100 meV/atom and -0.2 eV / 4 = -50 meV/atom
    result = energy_errors([-10.0, -20.0], [-9.8, -20.2], [2, 4])
    assert result['energy_mae_meV_atom'] == pytest.approx(75.0)
    assert result['energy_rmse_meV_atom'] == pytest.approx(math.sqrt((100.0**2 + 50.0**2) / 2))
    assert result['energy_offset_meV_atom'] == pytest.approx(25.0)
    assert result['energy_rmse_offset_removed_meV_atom'] == pytest.approx(75.0)  # ±75 around the +25 offset


def test_constant_energy_shift_is_only_an_offset():
    reference = np.array([-5.0, -7.5, -12.0])
    n_atoms = np.array([5, 5, 10])
    result = energy_errors(reference, reference + 0.01 * n_atoms, n_atoms)  # +10 meV/atom everywhere
    assert result['energy_mae_meV_atom'] == pytest.approx(10.0)
    assert result['energy_offset_meV_atom'] == pytest.approx(10.0)
    assert result['energy_rmse_offset_removed_meV_atom'] == pytest.approx(0.0, abs=1e-9)


def test_force_errors_overall_and_per_species():
    reference = np.zeros((3, 3))
    predicted = np.array([[0.3, 0.0, -0.4], [0.0, 0.0, 0.0], [0.0, 0.1, 0.0]])  # eV/Å
    result = force_errors(reference, predicted, ['Li', 'S', 'Li'])
    # components (meV/Å): 300, 0, 400, 0, 0, 0, 0, 100, 0 → MAE 800/9, RMSE sqrt(260000/9)
    assert result['force_mae_meV_A'] == pytest.approx(800.0 / 9)
    assert result['force_rmse_meV_A'] == pytest.approx(math.sqrt(260000.0 / 9))
    assert result['force_max_vector_error_meV_A'] == pytest.approx(500.0)  # |(300, 0, -400)|
    assert result['force_mae_per_species_meV_A'] == pytest.approx({'Li': 800.0 / 6, 'S': 0.0})
    assert result['force_rmse_per_species_meV_A']['Li'] == pytest.approx(math.sqrt(260000.0 / 6))


def test_stress_errors_in_both_units():
    reference = np.zeros((2, 6))
    predicted = np.zeros((2, 6))
    predicted[0, 0] = 0.006  # eV/Å³
    predicted[1, 5] = -0.003
    result = stress_errors(reference, predicted)
    assert result['stress_mae_meV_A3'] == pytest.approx(9.0 / 12)
    assert result['stress_rmse_meV_A3'] == pytest.approx(math.sqrt(45.0 / 12))
    assert result['stress_mae_GPa'] == pytest.approx(0.009 / 12 * EV_PER_A3_TO_GPA)
    assert result['stress_rmse_GPa'] == pytest.approx(math.sqrt(45e-6 / 12) * 160.2176634)


def test_evaluation_metrics_and_parity():
    arguments = {
        'reference_energy_eV': [-4.0, -6.0],
        'predicted_energy_eV': [-4.1, -6.0],
        'n_atoms': [1, 2],
        'reference_forces_eV_A': np.zeros((3, 3)),
        'predicted_forces_eV_A': np.full((3, 3), 0.01),
    }
    metrics = evaluation_metrics(species=['Li', 'Cl', 'Li'], **arguments)
    assert (metrics['n_structures'], metrics['n_atoms'], metrics['has_stress']) == (2, 3, False)
    assert metrics['energy_mae_meV_atom'] == pytest.approx(50.0)
    assert metrics['force_mae_meV_A'] == pytest.approx(10.0)
    assert 'stress_mae_meV_A3' not in metrics

    with_stress = evaluation_metrics(
        species=['Li', 'Cl', 'Li'],
        reference_stress_eV_A3=np.zeros((2, 6)),
        predicted_stress_eV_A3=np.full((2, 6), 0.001),
        **arguments,
    )
    assert with_stress['has_stress']
    assert with_stress['stress_mae_meV_A3'] == pytest.approx(1.0)

    arrays = parity_arrays(**arguments)
    np.testing.assert_allclose(arrays['energy_per_atom_reference_eV'], [-4.0, -3.0])
    np.testing.assert_allclose(arrays['energy_per_atom_predicted_eV'], [-4.1, -3.0])
    assert arrays['forces_predicted_eV_A'].shape == (3, 3)
    assert 'stress_reference_eV_A3' not in arrays


@pytest.mark.parametrize(
    ('call', 'message'),
    [
        (lambda: energy_errors([1.0, np.nan], [1.0, 1.0], [1, 1]), 'NaN or infinite'),
        (lambda: energy_errors([1.0, 2.0], [1.0, 2.0], [1]), 'one count per configuration'),
        (lambda: energy_errors([1.0], [1.0], [0]), 'at least one atom'),
        (lambda: force_errors(np.zeros((2, 3)), np.zeros((3, 3)), ['Li'] * 2), 'differ'),
        (lambda: force_errors(np.zeros((2, 3)), np.zeros((2, 3)), ['Li']), '1 species given for 2 atoms'),
        (lambda: force_errors(np.zeros((2, 2)), np.zeros((2, 2)), ['Li'] * 2), r'shape \(n, 3\)'),
        (lambda: stress_errors(np.zeros((1, 6)), np.full((1, 6), np.inf)), 'predicted stress contains NaN'),
        (lambda: energy_errors([], [], []), 'empty'),
        (
            lambda: evaluation_metrics(
                reference_energy_eV=[1.0],
                predicted_energy_eV=[1.0],
                n_atoms=[2],
                reference_forces_eV_A=np.zeros((3, 3)),
                predicted_forces_eV_A=np.zeros((3, 3)),
                species=['Li'] * 3,
            ),
            'n_atoms adds up to 2, but 3 atoms',
        ),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(MetricsError, match=message):
        call()


def test_errors_per_configuration_type():
    """Two types: the per-type errors are those of each type's configurations alone."""
    from aiida_mlffdiff.metrics import evaluation_metrics

    n_atoms = [2, 2, 2]
    reference_forces = np.zeros((6, 3))
    predicted_forces = np.zeros((6, 3))
    predicted_forces[4:] = 0.3  # the hot configuration is off by 0.3 eV/Å per component
    metrics = evaluation_metrics(
        reference_energy_eV=[0.0, 0.0, 0.0], predicted_energy_eV=[0.0, 0.02, 0.2], n_atoms=n_atoms,
        reference_forces_eV_A=reference_forces, predicted_forces_eV_A=predicted_forces,
        species=['Na', 'S'] * 3, config_types=['near-equilibrium', 'near-equilibrium', 'md-hot'],
    )  # fmt: skip
    per_type = metrics['per_config_type']
    assert set(per_type) == {'near-equilibrium', 'md-hot'}
    assert per_type['near-equilibrium']['n_structures'] == 2
    assert per_type['near-equilibrium']['force_mae_meV_A'] == 0
    assert per_type['md-hot']['force_mae_meV_A'] == pytest.approx(300)
    assert per_type['md-hot']['force_mae_per_species_meV_A'] == {'Na': pytest.approx(300), 'S': pytest.approx(300)}
    assert per_type['md-hot']['energy_mae_meV_atom'] == pytest.approx(100)
    assert metrics['force_mae_meV_A'] == pytest.approx(100)
    with pytest.raises(MetricsError, match='configuration types'):
        evaluation_metrics(
            reference_energy_eV=[0.0], predicted_energy_eV=[0.0], n_atoms=[2], reference_forces_eV_A=np.zeros((2, 3)),
            predicted_forces_eV_A=np.zeros((2, 3)), species=['Na', 'S'], config_types=['a', 'b'],
        )  # fmt: skip
