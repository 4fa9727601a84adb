"""``collect_training_set``: DFT outputs per configuration → one TrainingSet, or an exit code (never half a node)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from ase import Atoms

from aiida_mlffdiff.data.training_set import TrainingSet
from aiida_mlffdiff.dft.qe import GPA_PER_EV_A3
from aiida_mlffdiff.functions.collect import collect_training_set
from aiida_mlffdiff.functions.exit_codes import EXIT_CODES


def qe_outputs(atoms: Atoms, energy_eV: float, forces: np.ndarray, stress_GPa: np.ndarray | None) -> dict:
    """Stored nodes shaped like PwBaseWorkChain's output_parameters and output_trajectory."""
    parameters = orm.Dict({'energy': energy_eV, 'energy_units': 'eV', 'forces_units': 'ev / angstrom'}).store()
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(
        atoms.get_chemical_symbols(), atoms.positions[None], cells=atoms.cell[:][None], pbc=[True, True, True]
    )
    trajectory.set_array('forces', np.asarray(forces)[None])
    if stress_GPa is not None:
        trajectory.set_array('stress', np.asarray(stress_GPa)[None])
    return {'output_parameters': parameters, 'output_trajectory': trajectory.store()}


def configuration(seed: int, n_atoms: int = 4, **changes) -> dict:
    """One namespace: structure + QE-like outputs (energy −10 eV − seed, small forces, isotropic 1 GPa stress)."""
    rng = np.random.default_rng(seed)
    atoms = Atoms(
        ['Li', 'Li', 'S', 'Cl'][:n_atoms], positions=rng.uniform(0, 5, (n_atoms, 3)), cell=np.eye(3) * 6, pbc=True
    )
    forces = changes.pop('forces', rng.normal(0, 0.1, (n_atoms, 3)))
    stress = changes.pop('stress', np.eye(3) * 1.0)
    return {'structure': orm.StructureData(ase=atoms).store(), **qe_outputs(atoms, -10.0 - seed, forces, stress)}


def test_collects_in_sorted_order_with_units_and_provenance():
    namespaces = {'c0001': configuration(1), 'c0000': configuration(0), 'c0002': configuration(2)}
    result, node = collect_training_set.run_get_node(engine=orm.Str('qe'), functional=orm.Str('hse06'), **namespaces)
    assert node.is_finished_ok, node.exit_message
    training_set = result
    assert isinstance(training_set, TrainingSet)
    assert training_set.n_structures == 3
    assert training_set.functional == 'hse06'
    assert training_set.engine == 'qe'
    assert training_set.has_stress
    assert 'qe hse06 single points of 3 configurations' in training_set.source
    atoms = training_set.get_atoms()
    assert [a.get_potential_energy() for a in atoms] == [-10.0, -11.0, -12.0]
    np.testing.assert_allclose(
        atoms[0].get_forces(), namespaces['c0000']['output_trajectory'].get_array('forces')[-1], atol=1e-12
    )
    # 1 GPa compressive in QE's sign → −1/160.2 eV/Å³ in ASE's.
    np.testing.assert_allclose(atoms[0].get_stress(voigt=False), -np.eye(3) / GPA_PER_EV_A3, atol=1e-12)
    labels = {link.link_label for link in node.base.links.get_incoming().all()}
    assert {'engine', 'functional', 'c0000__structure', 'c0000__output_parameters', 'c0000__output_trajectory'} <= (
        labels
    )


@pytest.mark.parametrize(
    ('changes', 'message'),
    [
        ({'forces': np.zeros((3, 3))}, 'forces have shape (3, 3), the structure has 4 atoms'),
        ({'forces': np.full((4, 3), np.nan)}, 'NaN or inf'),
        ({'stress': np.full((3, 3), np.inf)}, 'NaN or inf'),
    ],
)
def test_bad_outputs_give_exit_code_and_no_training_set(changes, message):
    namespaces = {'c0000': configuration(0), 'c0001': configuration(1, **changes)}
    before = orm.QueryBuilder().append(TrainingSet).count()
    _, node = collect_training_set.run_get_node(engine=orm.Str('qe'), functional=orm.Str('pbe'), **namespaces)
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_DFT_OUTPUT'][0]
    assert "configuration 'c0001'" in node.exit_message
    assert message in node.exit_message
    assert orm.QueryBuilder().append(TrainingSet).count() == before


def test_missing_output_and_unknown_engine_and_empty():
    broken = configuration(0)
    del broken['output_trajectory']
    _, node = collect_training_set.run_get_node(engine=orm.Str('qe'), functional=orm.Str('pbe'), c0000=broken)
    assert node.exit_status == EXIT_CODES['ERROR_INVALID_DFT_OUTPUT'][0]
    assert 'missing QE outputs: output_trajectory' in node.exit_message

    _, node = collect_training_set.run_get_node(
        engine=orm.Str('cp2k'), functional=orm.Str('pbe'), c0000=configuration(0)
    )
    assert node.exit_status == EXIT_CODES['ERROR_UNKNOWN_DFT_ENGINE'][0]
    assert 'known engines: qe, vasp' in node.exit_message

    _, node = collect_training_set.run_get_node(engine=orm.Str('qe'), functional=orm.Str('pbe'))
    assert node.exit_status == EXIT_CODES['ERROR_NO_CONFIGURATION'][0]
