"""Unwrapping of periodic coordinates and removal of the framework drift."""

import numpy as np
import pytest

from aiida_mlffdiff.analysis import (
    AnalysisError,
    msd_from_positions,
    remove_framework_drift,
    tracer_msd,
    unwrap_positions,
)

#: A clearly non-orthogonal cell (rows are lattice vectors, Å).
TRICLINIC = np.array([[10.0, 0.0, 0.0], [3.0, 9.0, 0.0], [1.5, 2.0, 8.0]])


def random_path(seed, n_frames=300, n_atoms=6, step=0.4, drift=(0.0, 0.0, 0.0)):
    """An unwrapped Cartesian path (Å) that wanders over many cell images."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(-30.0, 30.0, size=(1, n_atoms, 3))
    steps = rng.normal(scale=step, size=(n_frames - 1, n_atoms, 3)) + np.asarray(drift)
    return np.concatenate([start, start + np.cumsum(steps, axis=0)])


def wrap(path, cell):
    """Fractional and Cartesian coordinates folded into the home cell [0, 1)."""
    frac = path @ np.linalg.inv(cell)
    frac = frac - np.floor(frac)
    return frac, frac @ cell


def assert_same_up_to_first_image(unwrapped, path, cell):
    """``unwrapped`` equals ``path`` shifted by one lattice vector, the same for all frames of an atom."""
    shift = unwrapped[0] - path[0]
    images = shift @ np.linalg.inv(cell)
    np.testing.assert_allclose(images, np.round(images), atol=1e-9)
    np.testing.assert_allclose(unwrapped, path + shift[None], rtol=0, atol=1e-9)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_unwrap_recovers_path_from_cartesian(seed):
    path = random_path(seed, drift=(0.1, -0.15, 0.2))
    _, wrapped = wrap(path, TRICLINIC)
    assert np.ptp(path @ np.linalg.inv(TRICLINIC), axis=0).max() > 3  # the path really crosses several cells
    unwrapped = unwrap_positions(wrapped, TRICLINIC)
    assert unwrapped.shape == path.shape
    np.testing.assert_allclose(unwrapped[0], wrapped[0], atol=1e-12)  # the first frame keeps its image
    assert_same_up_to_first_image(unwrapped, path, TRICLINIC)


@pytest.mark.parametrize('seed', [3, 4])
def test_unwrap_recovers_path_from_fractional(seed):
    path = random_path(seed)
    frac, wrapped = wrap(path, TRICLINIC)
    from_frac = unwrap_positions(frac, TRICLINIC, fractional=True)
    assert_same_up_to_first_image(from_frac, path, TRICLINIC)
    np.testing.assert_allclose(from_frac, unwrap_positions(wrapped, TRICLINIC), atol=1e-9)


def test_unwrap_with_arbitrary_images_per_frame():
    """Not only folding into [0, 1): any lattice translation per frame and atom is undone."""
    path = random_path(5)
    rng = np.random.default_rng(5)
    images = rng.integers(-3, 4, size=path.shape)
    scrambled = path + images @ TRICLINIC
    assert_same_up_to_first_image(unwrap_positions(scrambled, TRICLINIC), path, TRICLINIC)


def test_already_unwrapped_input_is_unchanged():
    path = random_path(6)
    np.testing.assert_allclose(unwrap_positions(path, TRICLINIC), path, rtol=0, atol=1e-9)
    frac = path @ np.linalg.inv(TRICLINIC)
    np.testing.assert_allclose(unwrap_positions(frac, TRICLINIC, fractional=True), path, rtol=0, atol=1e-9)


def test_unwrap_does_not_modify_its_input():
    _, wrapped = wrap(random_path(7), TRICLINIC)
    copy = wrapped.copy()
    unwrap_positions(wrapped, TRICLINIC)
    np.testing.assert_array_equal(wrapped, copy)


def test_frames_too_far_apart():
    path = random_path(8, n_frames=20, step=0.05)
    frac = path @ np.linalg.inv(TRICLINIC)
    frac[8:, 3, 1] += 0.45  # atom 3 jumps 0.45 of the cell along lattice vector 2 between frames 7 and 8
    with pytest.raises(AnalysisError, match='too far apart') as info:
        unwrap_positions(frac @ TRICLINIC, TRICLINIC)
    message = str(info.value)
    assert 'atom 3' in message
    assert 'lattice vector 2' in message
    assert 'frames 7 and 8' in message
    # the same jump is accepted when the limit is raised above it
    unwrapped = unwrap_positions(frac @ TRICLINIC, TRICLINIC, max_fractional_step=0.49)
    np.testing.assert_allclose(unwrapped, frac @ TRICLINIC, atol=1e-9)


def test_step_just_below_limit_is_accepted():
    path = random_path(9, n_frames=10, n_atoms=2, step=0.0)
    frac = path @ np.linalg.inv(TRICLINIC)
    frac[5:, 0, 0] += 0.39
    np.testing.assert_allclose(unwrap_positions(frac, TRICLINIC, fractional=True), frac @ TRICLINIC, atol=1e-9)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_positions(bad):
    positions = random_path(10, n_frames=5, n_atoms=3)
    positions[2, 1, 0] = bad
    with pytest.raises(AnalysisError, match='NaN/inf') as info:
        unwrap_positions(positions, TRICLINIC)
    assert '(2, 1, 0)' in str(info.value)


@pytest.mark.parametrize(
    ('shape', 'pattern'),
    [
        ((10, 3), r'\(n_frames, n_atoms, 3\)'),
        ((10, 4, 2), r'\(n_frames, n_atoms, 3\)'),
        ((2, 10, 4, 3), r'\(n_frames, n_atoms, 3\)'),
        ((1, 4, 3), 'at least 2 frames'),
        ((5, 0, 3), 'empty|no atoms'),
    ],
)
def test_wrong_shapes(shape, pattern):
    with pytest.raises(AnalysisError, match=pattern):
        unwrap_positions(np.zeros(shape), TRICLINIC)


@pytest.mark.parametrize(
    ('cell', 'pattern'),
    [
        ([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]], 'singular'),
        (np.zeros((3, 3)), 'singular'),
        (np.eye(2), '3x3'),
        ([[np.nan, 0, 0], [0, 1, 0], [0, 0, 1]], 'NaN'),
    ],
)
def test_bad_cell(cell, pattern):
    with pytest.raises(AnalysisError, match=pattern):
        unwrap_positions(random_path(11, n_frames=4, n_atoms=2), cell)


# --- framework drift -------------------------------------------------------------------------------------


def drifting_system(seed, drift, n_frames=400, dt=0.1):
    """8 Li random walkers and 8 O at fixed sites, everything moving with a common drift (Å/ps)."""
    rng = np.random.default_rng(seed)
    n_li, n_o = 8, 8
    walk = np.cumsum(rng.normal(scale=0.15, size=(n_frames, n_li, 3)), axis=0) + rng.uniform(0, 9, (n_li, 3))
    sites = np.repeat(rng.uniform(0, 9, (1, n_o, 3)), n_frames, axis=0)
    shift = np.arange(n_frames)[:, None, None] * dt * np.asarray(drift)
    positions = np.concatenate([walk, sites], axis=1) + shift
    symbols = ['Li'] * n_li + ['O'] * n_o
    return walk, positions, symbols


def test_common_drift_removed_exactly_from_mobile_msd():
    drift = (0.4, -0.3, 0.25)
    walk, positions, symbols = drifting_system(12, drift)
    _, wrapped = wrap(positions, TRICLINIC)
    reference = tracer_msd(walk)
    corrected = msd_from_positions(wrapped, TRICLINIC, symbols, 'Li', 0.1)
    np.testing.assert_allclose(corrected.msd_A2, reference, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(corrected.time_ps, np.arange(400) * 0.1)
    assert corrected.n_ions == 8
    assert corrected.volume_A3 == pytest.approx(abs(np.linalg.det(TRICLINIC)))
    # without the correction the drift shows up as |v|² t² on top of the diffusion
    raw = msd_from_positions(wrapped, TRICLINIC, symbols, 'Li', 0.1, drift_correction=False)
    lag = 200
    excess = raw.msd_A2[lag] - reference[lag]
    assert excess == pytest.approx(np.dot(drift, drift) * (lag * 0.1) ** 2, rel=0.3)


def test_remove_framework_drift_positions():
    drift = (0.2, 0.1, -0.5)
    walk, positions, _ = drifting_system(13, drift, n_frames=50)
    mask = np.array([False] * 8 + [True] * 8)
    corrected = remove_framework_drift(positions, mask)
    np.testing.assert_allclose(corrected[:, :8], walk, atol=1e-9)
    np.testing.assert_allclose(corrected[:, 8:], np.repeat(corrected[:1, 8:], 50, axis=0), atol=1e-9)
    # equal explicit masses are the same as no masses
    np.testing.assert_allclose(remove_framework_drift(positions, mask, masses=np.full(16, 7.0)), corrected, atol=1e-9)


def test_mass_weighted_drift():
    """Two framework atoms move differently; only the mass-weighted centre is removed."""
    rng = np.random.default_rng(14)
    n_frames, dt = 100, 0.1
    t = (np.arange(n_frames) * dt)[:, None]
    v_heavy, v_light = np.array([0.2, 0.0, -0.1]), np.array([-0.4, 0.3, 0.5])
    m_heavy, m_light = 16.0, 4.0
    v_centre = (m_heavy * v_heavy + m_light * v_light) / (m_heavy + m_light)
    walk = np.cumsum(rng.normal(scale=0.1, size=(n_frames, 3, 3)), axis=0)
    positions = np.concatenate(
        [walk + (t * v_centre)[:, None], (t * v_heavy)[:, None] + 1.0, (t * v_light)[:, None] + 2.0], axis=1
    )
    mask = np.array([False, False, False, True, True])
    masses = np.array([7.0, 7.0, 7.0, m_heavy, m_light])
    corrected = remove_framework_drift(positions, mask, masses)
    np.testing.assert_allclose(corrected[:, :3], walk, atol=1e-9)
    centre = (corrected[:, 3] * m_heavy + corrected[:, 4] * m_light) / (m_heavy + m_light)
    np.testing.assert_allclose(centre, np.repeat(centre[:1], n_frames, axis=0), atol=1e-9)
    # equal weights would leave a residual drift on the mobile atoms
    unweighted = remove_framework_drift(positions, mask)
    residual = unweighted[-1, :3] - walk[-1]
    np.testing.assert_allclose(residual, np.repeat([(v_centre - (v_heavy + v_light) / 2) * t[-1]], 3, axis=0))
    assert np.abs(residual).max() > 0.1
    # and through msd_from_positions
    symbols = ['Li'] * 3 + ['O', 'S']
    result = msd_from_positions(positions, np.eye(3) * 30.0, symbols, 'Li', dt, masses=masses)
    np.testing.assert_allclose(result.msd_A2, tracer_msd(walk), rtol=1e-9, atol=1e-9)


def test_drift_errors():
    positions = random_path(15, n_frames=5, n_atoms=4)
    with pytest.raises(AnalysisError, match='framework_mask must have shape'):
        remove_framework_drift(positions, [True, False])
    with pytest.raises(AnalysisError, match='no framework'):
        remove_framework_drift(positions, [False] * 4)
    with pytest.raises(AnalysisError, match='masses contains'):
        remove_framework_drift(positions, [True, True, False, False], masses=[1.0, np.nan, 1.0, 1.0])
    symbols = ['Li', 'Li', 'O', 'O']
    cell = np.eye(3) * 100.0
    with pytest.raises(AnalysisError, match='masses must have shape'):
        msd_from_positions(positions, cell, symbols, 'Li', 0.1, masses=[1.0, 2.0])
    with pytest.raises(AnalysisError, match='every atom is Li'):
        msd_from_positions(positions, cell, ['Li'] * 4, 'Li', 0.1)
    with pytest.raises(AnalysisError, match="species 'Na' is absent"):
        msd_from_positions(positions, cell, symbols, 'Na', 0.1)
    with pytest.raises(AnalysisError, match='3 chemical symbols given for 4 atoms'):
        msd_from_positions(positions, cell, symbols[:3], 'Li', 0.1)
    with pytest.raises(AnalysisError, match='frame_interval_ps must be a positive number'):
        msd_from_positions(positions, cell, symbols, 'Li', 0.0)
    # all mobile is fine without the drift correction
    result = msd_from_positions(positions, cell, ['Li'] * 4, 'Li', 0.1, drift_correction=False)
    np.testing.assert_allclose(result.msd_A2, tracer_msd(positions), rtol=1e-9, atol=1e-12)


def test_drift_masses_of_wrong_length_raise_analysis_error():
    positions = random_path(16, n_frames=5, n_atoms=4)
    with pytest.raises(AnalysisError, match='masses'):
        remove_framework_drift(positions, [True, True, False, False], masses=[1.0, 2.0, 3.0])


@pytest.mark.filterwarnings('ignore::RuntimeWarning')
def test_drift_zero_framework_mass_is_refused():
    positions = random_path(17, n_frames=5, n_atoms=4)
    try:
        corrected = remove_framework_drift(positions, [True, True, False, False], masses=[0.0, 0.0, 1.0, 1.0])
    except AnalysisError:
        return
    assert np.isfinite(corrected).all()
