"""Every process class of the plugin is reachable by its entry point, and failed jobs are never cache sources."""

import pytest
from aiida.plugins import CalculationFactory, WorkflowFactory

from aiida_mlffdiff.workchains.diffusion import LammpsEnsembleBaseWorkChain, MdEnsembleBaseWorkChain
from aiida_mlffdiff.workchains.training import TrainBaseWorkChain


@pytest.mark.parametrize(
    ('entry_point', 'cls'),
    [
        ('mlffdiff.training.base', TrainBaseWorkChain),
        ('mlffdiff.md_ensemble.base', MdEnsembleBaseWorkChain),
        ('mlffdiff.lammps_ensemble.base', LammpsEnsembleBaseWorkChain),
    ],
)
def test_restart_wrappers_have_entry_points(entry_point, cls):
    """Nodes then store the entry point, not the class path, so the classes can move without orphaning nodes."""
    from aiida.plugins.entry_point import get_entry_point_string_from_class

    assert WorkflowFactory(entry_point) is cls
    assert get_entry_point_string_from_class(cls.__module__, cls.__name__) == f'aiida.workflows:{entry_point}'


@pytest.mark.parametrize(
    ('entry_point', 'invalidating', 'cacheable'),
    [
        ('mlffdiff.train', {300, 310, 320, 330, 340, 350}, set()),
        ('mlffdiff.evaluate', {300, 310, 320, 330}, {340}),
        ('mlffdiff.predict', {300, 310, 320, 330}, {340}),
        ('mlffdiff.md_ensemble', {300, 310, 320}, {330, 340}),
    ],
)
def test_failed_jobs_are_not_cache_sources(entry_point, invalidating, cacheable):
    """Parse and environment failures invalidate the cache; deterministic physics outcomes do not."""
    exit_codes = CalculationFactory(entry_point).exit_codes
    own = {code.status: code.invalidates_cache for code in exit_codes.values() if 300 <= code.status < 400}
    assert {status for status, flag in own.items() if flag} == invalidating
    assert {status for status, flag in own.items() if not flag} == cacheable


def test_driver_calcjobs_share_one_base():
    """The evaluate and MD CalcJobs run a driver the same way (DriverCalculation) and share its exit codes."""
    from aiida_mlffdiff.calculations.driver import DriverCalculation

    for entry_point in ('mlffdiff.evaluate', 'mlffdiff.predict', 'mlffdiff.md_ensemble'):
        cls = CalculationFactory(entry_point)
        assert issubclass(cls, DriverCalculation)
        assert cls.exit_codes.ERROR_MISSING_OUTPUT.status == 300
        assert cls.exit_codes.ERROR_MODEL_LOAD_FAILED.status == 310
        assert cls.spec().inputs['metadata']['options']['output_filename'].default == cls._STDOUT
