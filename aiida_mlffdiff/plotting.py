"""PNG plots: MSD (log–log, with the fit window and the Einstein line) and Arrhenius (D(T) with the fit)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import numpy as np

from .analysis.resolution import arrhenius_unresolved, d_unresolved
from .analysis.units import A2_PER_PS_TO_CM2_PER_S, KB_EV_PER_K


def plot_msd(time_ps, msd_A2, diffusion: dict | None, path: str | Path, msd_sem_A2=None, replicas_A2=None) -> Path:
    """Log–log MSD (Å²) against lag (ps) with the fit window shaded and the fitted Einstein line."""
    time, msd = np.asarray(time_ps), np.asarray(msd_A2)
    figure, axis = plt.subplots(figsize=(6, 4.5))
    positive = time > 0
    if replicas_A2 is not None:
        for curve in np.asarray(replicas_A2)[:50]:
            axis.loglog(time[positive], curve[positive], color='0.8', lw=0.6)
    axis.loglog(time[positive], msd[positive], color='C0', label='pooled MSD')
    if msd_sem_A2 is not None:
        sem = np.asarray(msd_sem_A2)[positive]
        axis.fill_between(time[positive], msd[positive] - 2 * sem, msd[positive] + 2 * sem, color='C0', alpha=0.25)
    diffusion = diffusion or {}
    if 'D_cm2_s' in diffusion:
        _einstein_overlay(axis, time[positive], diffusion)
    title = f'{diffusion.get("species", "")} MSD'
    if diffusion.get('temperature_K'):
        title += f' at {diffusion["temperature_K"]:g} K'
    axis.set(xlabel='lag time (ps)', ylabel='MSD (Å²)', title=title)
    axis.legend(frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def _einstein_overlay(axis, time_ps, diffusion: dict) -> None:
    """Shade the fit window and draw MSD = 6 D t + c; an unresolved D is named as such, with no line."""
    start, end = diffusion['fit_start_ps'], diffusion['fit_end_ps']
    axis.axvspan(start, end, color='C2', alpha=0.12, label=f'fit window {start:.3g}–{end:.3g} ps')
    reason = d_unresolved(diffusion)
    if reason:
        axis.plot([], [], ' ', label=_wrap(f'D unresolved: {reason}'))
        return
    slope = 6 * diffusion['D_cm2_s'] / A2_PER_PS_TO_CM2_PER_S
    line_t = np.geomspace(max(start / 3, time_ps[0]), time_ps[-1], 100)
    line = slope * line_t + (diffusion.get('intercept_A2') or 0.0)
    axis.loglog(line_t, line, 'C3--', label=f'D = {diffusion["D_cm2_s"]:.3g} cm²/s')


def _wrap(text: str, width: int = 48) -> str:
    import textwrap

    return '\n'.join(textwrap.wrap(text, width))


def plot_arrhenius(series: dict[str, dict], path: str | Path) -> Path:
    """D (cm²/s, log) against 1000/T (1/K) with error bars and fitted lines, one series per label.

    Unresolved numbers (:mod:`aiida_mlffdiff.analysis.resolution`) are drawn as such: an unresolved D as a hollow
    marker, an unresolved Ea as a dotted line labelled "Ea unresolved" with the reason, and no extrapolated point
    when D at the extrapolation temperature is unresolved.

    :param series: label → an Arrhenius result (``temperatures_K``, ``D_cm2_s``, optional ``D_err_cm2_s``,
        ``Ea_eV``, ``Ea_err_eV``, ``D0_cm2_s``, extrapolation ``temperature_K`` and ``D_interval_cm2_s``; the
        verdicts ``unresolved`` and ``D_unresolved`` when the fit stored them, else they are judged here).
    """
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for index, (label, fit) in enumerate(series.items()):
        color = f'C{index}'
        temperatures = np.asarray(fit['temperatures_K'], dtype=float)
        d_values = np.asarray(fit['D_cm2_s'], dtype=float)
        errors = fit.get('D_err_cm2_s')
        verdicts = fit.get('unresolved') or arrhenius_unresolved(fit)
        points = list(fit.get('D_unresolved') or [None] * temperatures.size)
        hollow = np.array([bool(reason) for reason in points])
        for selection, face in ((~hollow, color), (hollow, 'none')):
            if not selection.any():
                continue
            axis.errorbar(
                1000 / temperatures[selection],
                d_values[selection],
                yerr=None if errors is None else 2 * np.asarray(errors)[selection],
                fmt='o',
                color=color,
                mfc=face,
                capsize=3,
            )
        target = fit.get('temperature_K', 300.0)
        inverse = np.linspace(1000 / temperatures.max(), 1000 / min(target, temperatures.min()), 100)
        line = fit['D0_cm2_s'] * np.exp(-fit['Ea_eV'] / (KB_EV_PER_K * 1000 / inverse))
        if verdicts.get('Ea'):
            text = _wrap(f'{label}: Ea unresolved ({verdicts["Ea"]})')
            axis.semilogy(inverse, line, ':', color=color, alpha=0.6, label=text)
        else:
            text = f'{label}: Ea = {fit["Ea_eV"]:.3f} ± {fit["Ea_err_eV"] or 0:.3f} eV'
            axis.semilogy(inverse, line, '-', color=color, label=text)
        if fit.get('D_interval_cm2_s') and not verdicts.get('D_at_T'):
            low, high = fit['D_interval_cm2_s']
            axis.errorbar(
                [1000 / target],
                [fit['D_at_T_cm2_s']],
                yerr=[[fit['D_at_T_cm2_s'] - low], [high - fit['D_at_T_cm2_s']]],
                fmt='s',
                mfc='none',
                color=color,
                capsize=3,
            )
    if any(fit.get('D_unresolved') and any(fit['D_unresolved']) for fit in series.values()):
        axis.plot([], [], 'o', mfc='none', color='0.4', label='hollow: D unresolved')
    axis.set(
        xlabel='1000 / T (1/K)', ylabel='D (cm²/s)', title='Arrhenius plot (error bars: 2 SE; square: extrapolation)'
    )
    axis.legend(frameon=False, fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def _axis_groups(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows grouped by (reference level, architecture): one learning curve each."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row.get('n_train') is None:
            continue
        key = f'{row["functional"]} {row.get("reference_level") or ""} {row["architecture"]}'.replace('  ', ' ')
        groups.setdefault(key, []).append(row)
    return {key: sorted(group, key=lambda row: row['n_train']) for key, group in groups.items()}


def plot_learning_curves(rows: list[dict], temperature_K: float, path: str | Path) -> Path:
    """Force RMSE against the reference labels on the test set (meV/Å; dashed: the training's validation RMSE on the
    row's own labels) and D at ``temperature_K`` (cm²/s) against the number of training configurations, one line per
    (functional, reference level, architecture); unresolved D left out."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    for index, (key, group) in enumerate(_axis_groups(rows).items()):
        color = f'C{index}'
        sizes = [row['n_train'] for row in group]
        rmse = [row.get('force_rmse_reference_meV_A') or row.get('force_rmse_meV_A') for row in group]
        left.plot(sizes, rmse, 'o-', color=color, label=f'{key} test')
        validation = [(n, row.get('validation_force_rmse_meV_A')) for n, row in zip(sizes, group, strict=True)]
        validation = [(n, value) for n, value in validation if value is not None]
        if validation:
            left.plot(*zip(*validation, strict=True), 's--', color=color, alpha=0.6, label=f'{key} validation')
        points = []
        for row in group:
            for entry in row['temperatures'].values():
                if entry['temperature_K'] == temperature_K and not entry.get('unresolved'):
                    points.append((row['n_train'], entry['D_cm2_s'], entry['D_err_cm2_s']))
        if points:
            n, d, err = (np.array(values) for values in zip(*points, strict=True))
            right.errorbar(n, d, yerr=2 * err, fmt='o-', color=color, capsize=3, label=key)
    left.set(xlabel='training configurations', ylabel='force RMSE vs reference labels (meV/Å)', title='learning curve')
    right.set(xlabel='training configurations', ylabel=f'D({temperature_K:g} K) (cm²/s)', yscale='log',
              title='D against dataset size (2 SE; unresolved D left out)')  # fmt: skip
    for axis in (left, right):
        axis.legend(frameon=False, fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_label_histograms(histograms: dict[str, dict[str, np.ndarray]], path: str | Path) -> Path:
    """Distribution of |ΔF| per Cartesian component (meV/Å, log bins) of each cheap level against the reference
    level, one panel per level, one line per species.

    :param histograms: label (``<functional>_<level>``) → ``{'edges_meV_A': ..., 'counts_<species>': ...}``.
    """
    figure, axes = plt.subplots(1, len(histograms), figsize=(5 * len(histograms), 4), squeeze=False)
    for axis, (label, arrays) in zip(axes[0], histograms.items(), strict=True):
        edges = np.asarray(arrays['edges_meV_A'])
        centres = np.sqrt(np.maximum(edges[:-1], edges[1] / 10) * edges[1:])
        for name, counts in sorted(arrays.items()):
            if not name.startswith('counts_'):
                continue
            counts = np.asarray(counts, dtype=float)
            style = 'k-' if name == 'counts_all' else '-'
            axis.step(centres, counts / max(counts.sum(), 1), style, where='mid', label=name[len('counts_') :])
        axis.set(xscale='log', xlabel='|ΔF| per component (meV/Å)', ylabel='fraction', title=f'{label} vs reference')
        axis.legend(frameon=False, fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_rmse_vs_transport(result: dict, path: str | Path) -> Path:
    """Force RMSE (meV/Å) against |ln D/D_ref| per model, with Spearman's ρ and its interval in the title (or why it
    is unresolved)."""
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for label, rmse, error in result.get('pairs') or []:
        axis.plot(rmse, error, 'o', color='C0')
        axis.annotate(label, (rmse, error), fontsize='x-small', xytext=(3, 3), textcoords='offset points')
    correlation = result.get('correlation')
    if correlation is None or correlation.get('unresolved'):
        why = result.get('unresolved') or (correlation or {}).get('unresolved')
        title = _wrap(f'Spearman ρ unresolved: {why}', 60)
    else:
        low, high = correlation['interval']
        title = f'Spearman ρ = {correlation["rho"]:+.2f} [{low:+.2f}, {high:+.2f}] ({correlation["n_pairs"]} models)'
    temperature = result.get('temperature_K')
    axis.set(
        xlabel='force RMSE vs reference labels (meV/Å)',
        ylabel=f'|ln D/D_ref| at {temperature:g} K' if temperature else '|ln D/D_ref|',
        title=title,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


#: Errors below this (meV/Å) are drawn at it: zero to round-off on a log axis.
LOCALITY_FLOOR_MEV_A = 1e-4


def plot_locality(profiles: dict[str, dict], path: str | Path) -> Path:
    """Locality error (meV/Å, log) against R (Å) and against R/(2 r_f), one line per model and central species.

    :param profiles: model label → the ``locality`` Dict of a LocalityWorkChain. Errors below
        :data:`LOCALITY_FLOOR_MEV_A` (round-off) are drawn on the floor; dotted lines mark 2 r_f.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, (label, profile) in enumerate(profiles.items()):
        radii = np.asarray(profile['radii_A'])
        scaled = np.asarray(profile['R_over_2rf'])
        for number, (species, entry) in enumerate(sorted(profile['species'].items())):
            errors = np.maximum(np.asarray(entry['errors_meV_A']), LOCALITY_FLOOR_MEV_A)
            style = ('-', '--', ':', '-.')[number % 4]
            name = f'{label} {species}' if len(profiles) > 1 else species
            left.plot(radii, errors, 'o' + style, color=f'C{index if len(profiles) > 1 else number}', label=name)
            right.plot(scaled, errors, 'o' + style, color=f'C{index if len(profiles) > 1 else number}')
        left.axvline(2 * profile['receptive_field_A'], color=f'C{index}' if len(profiles) > 1 else 'k', ls=':', lw=1)
        threshold = profile['threshold_meV_A']
    for axis in (left, right):
        axis.set_yscale('log')
        axis.axhline(threshold, color='grey', lw=0.8)
        axis.axhline(LOCALITY_FLOOR_MEV_A, color='grey', lw=0.5, ls='--')
    right.axvline(1.0, color='k', ls=':', lw=1)
    left.set(xlabel='R: radius of the fixed region (Å)', ylabel='locality error of the central force (meV/Å)',
             title='dotted: 2 × receptive field; grey: threshold, dashed: round-off floor')  # fmt: skip
    right.set(xlabel='R / (2 r_f)', title='the same against twice the receptive field')
    left.legend(frameon=False, fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_scaling(scalings: dict[str, dict], path: str | Path, variations: dict[str, list[dict]] | None = None) -> Path:
    """Wall time of 10⁶ MD steps (h, one replica) and peak memory (MB) against the number of atoms, log-log, one
    line per model/engine; the dotted line is O(N) through each model's largest size. With ``variations``, a third
    panel: the throughput speed-up of one worker against replicas per batch or threads (dashed: ideal).

    :param scalings: label → the ``scaling`` Dict of a ScalingWorkChain.
    :param variations: label → its ``batching``/``threading`` Dicts.
    """
    variations = {label: found for label, found in (variations or {}).items() if found}
    figure, axes = plt.subplots(1, 3 if variations else 2, figsize=(16 if variations else 11, 4.2))
    left, right = axes[0], axes[1]
    for index, (label, scaling) in enumerate(scalings.items()):
        n = np.asarray(scaling['n_atoms'], dtype=float)
        hours = np.asarray(scaling['wall_hours_per_1e6_steps'])
        color = f'C{index}'
        left.plot(n, hours, 'o-', color=color, label=f'{label} (slope {scaling["loglog_slope"]:.2f})')
        left.plot(n, hours[-1] * n / n[-1], ':', color=color, lw=1)
        memory = [np.nan if m is None else m for m in scaling['peak_rss_MB']]  # None: not recorded
        right.plot(n, memory, 's-', color=color, label=label)
    left.set(xscale='log', yscale='log', xlabel='atoms', ylabel='wall time of 10⁶ MD steps (h, 1 replica, 1 core)',
             title='cost against size (dotted: O(N))')  # fmt: skip
    right.set(xscale='log', xlabel='atoms', ylabel='peak resident memory (MB)', title='memory of the MD process')
    if variations:
        third = axes[2]
        names = {'n_replicas': 'replicas per batch', 'threads_per_worker': 'threads per worker'}
        largest = 1
        for index, (label, found) in enumerate(variations.items()):
            for style, varied in zip(('o-', 's--'), found, strict=False):
                name = names.get(varied['dimension'], varied['dimension'])
                third.plot(varied['values'], varied['speedup'], style, color=f'C{index}',
                           label=f'{label}: {name} ({varied["n_atoms"]} atoms)')  # fmt: skip
                largest = max(largest, *varied['values'])
        third.plot([1, largest], [1, largest], 'k:', lw=1, label='ideal')
        third.set(xscale='log', yscale='log', xlabel='replicas per batch / threads per worker',
                  ylabel='throughput speed-up (atom-steps/s)', title='one worker at the probe size')  # fmt: skip
    for axis in axes:
        axis.legend(frameon=False, fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


#: At most this many force constants are drawn per model in a parity panel (a fixed random subset beyond it).
PARITY_POINTS = 20000


def _parity_subset(reference: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, predicted = np.ravel(reference), np.ravel(predicted)
    if reference.size > PARITY_POINTS:
        chosen = np.random.default_rng(0).choice(reference.size, PARITY_POINTS, replace=False)
        reference, predicted = reference[chosen], predicted[chosen]
    return reference, predicted


def plot_force_constants(sources: dict[str, dict], metrics: dict[str, dict], path: str | Path) -> Path:
    """Models against DFT: Φ2 parity (eV/Å²), Φ3 parity (eV/Å³), phonon bands overlaid (THz) and the DOS.

    :param sources: ``'dft'`` and each model key → ``fc2``, ``fc3`` (or None) compact arrays and the ``phonons``
        arrays/attributes of a ForceConstantsWorkChain (``band_distances``, ``band_frequencies_THz``,
        ``band_segment_lengths``, ``band_labels``, ``mesh_frequencies_THz``, ``mesh_weights``).
    :param metrics: model key → its ``metrics`` Dict (R², MAE and RMSE in the legends).
    """
    from .analysis.force_constants import gaussian_dos

    reference = sources['dft']
    models = [key for key in sources if key != 'dft']
    figure, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    for axis, order, unit in ((axes[0, 0], 'fc2', 'eV/Å²'), (axes[0, 1], 'fc3', 'eV/Å³')):
        if reference.get(order) is None:
            axis.text(0.5, 0.5, f'{order}: not computed', ha='center', va='center', transform=axis.transAxes)
            axis.set_axis_off()
            continue
        low, high = float(np.min(reference[order])), float(np.max(reference[order]))
        for index, key in enumerate(models):
            if sources[key].get(order) is None:
                continue
            x, y = _parity_subset(reference[order], sources[key][order])
            entry = metrics.get(key, {}).get(order, {})
            label = f'{key}: R² {entry.get("r2", float("nan")):.3f}, MAE {entry.get("mae", float("nan")):.2g} {unit}'
            axis.plot(x, y, '.', ms=2, alpha=0.5, color=f'C{index}', label=label)
            low, high = min(low, float(y.min())), max(high, float(y.max()))
        axis.plot([low, high], [low, high], 'k-', lw=0.8)
        axis.set(xlabel=f'DFT Φ{order[-1]} ({unit})', ylabel=f'model Φ{order[-1]} ({unit})',
                 title=f'{"second" if order == "fc2" else "third"}-order force constants')  # fmt: skip
        axis.legend(frameon=False, fontsize='small', markerscale=4)
    bands_axis, dos_axis = axes[1, 0], axes[1, 1]
    lengths = reference['band_segment_lengths']
    starts = np.concatenate([[0], np.cumsum(lengths)])
    distances = reference['band_distances']
    for index, key in enumerate(['dft', *models]):
        frequencies = sources[key]['band_frequencies_THz']
        color = 'k' if key == 'dft' else f'C{index - 1}'
        rmse = metrics.get(key, {}).get('phonons', {}).get('band_rmse_THz')
        label = 'DFT' if key == 'dft' else f'{key}: RMSE {rmse:.2f} THz' if rmse is not None else key
        for segment in range(len(lengths)):
            piece = slice(starts[segment], starts[segment + 1])
            bands_axis.plot(distances[piece], frequencies[piece], color=color, lw=1.2 if key == 'dft' else 0.9,
                            ls='-' if key == 'dft' else '--', label=label if segment == 0 else None)  # fmt: skip
    ticks = [distances[start] for start in starts[:-1]] + [distances[-1]]
    labels = reference.get('band_labels') or []
    bands_axis.set_xticks(ticks)
    bands_axis.set_xticklabels(labels if len(labels) == len(ticks) else [''] * len(ticks))
    for tick in ticks:
        bands_axis.axvline(tick, color='grey', lw=0.5)
    handles, names = bands_axis.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    bands_axis.legend(unique.values(), unique.keys(), frameon=False, fontsize='small')
    bands_axis.axhline(0, color='grey', lw=0.5)
    bands_axis.set(xlim=(distances[0], distances[-1]), ylabel='frequency (THz)', title='phonon bands (dashed: models)')
    top = max(float(np.max(source['mesh_frequencies_THz'])) for source in sources.values()) + 1.0
    bottom = min(0.0, min(float(np.min(source['mesh_frequencies_THz'])) for source in sources.values())) - 0.5
    grid = np.linspace(bottom, top, 400)
    for index, key in enumerate(['dft', *models]):
        dos = gaussian_dos(sources[key]['mesh_frequencies_THz'], sources[key]['mesh_weights'], grid, 0.2)
        overlap = metrics.get(key, {}).get('phonons', {}).get('dos_overlap')
        label = 'DFT' if key == 'dft' else f'{key}: overlap {overlap:.2f}' if overlap is not None else key
        dos_axis.plot(grid, dos, color='k' if key == 'dft' else f'C{index - 1}', label=label)
    dos_axis.set(
        xlabel='frequency (THz)', ylabel='DOS (states/THz per primitive cell)', title='phonon DOS (σ = 0.2 THz)'
    )
    dos_axis.legend(frameon=False, fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_benchmark(comparison: dict, path: str | Path) -> Path:
    """A benchmark: force MAE per species (meV/Å, grouped bars, log axis) and D/D_ref per model with its 1σ band on a
    log axis, one marker per temperature; a ratio that is not a result is written "unresolved" at 1, never drawn."""
    rows = comparison['rows']
    labels = [row['label'] for row in rows]
    species = sorted({s for row in rows for s in (row.get('force_mae_per_species_meV_A') or {})})
    temperatures = sorted(
        {t for row in rows for t in row['temperatures']}, key=lambda t: float(t[2:-1].replace('p', '.'))
    )
    figure, (forces, ratios) = plt.subplots(1, 2, figsize=(12, 0.45 * len(labels) + 2.5), sharey=True)
    positions = np.arange(len(labels))
    width = 0.8 / max(len(species), 1)
    for k, symbol in enumerate(species):
        values = [(row.get('force_mae_per_species_meV_A') or {}).get(symbol, np.nan) for row in rows]
        forces.barh(positions + (k - (len(species) - 1) / 2) * width, values, height=width, label=symbol)
    forces.set(xscale='log', xlabel='force MAE against DFT (meV/Å)', yticks=positions, yticklabels=labels)
    if species:
        forces.legend(fontsize='small')
    ratios.axvline(1.0, color='0.5', linewidth=1)
    for k, t_label in enumerate(temperatures):
        for i, row in enumerate(rows):
            cell = row['temperatures'].get(t_label, {})
            if 'D_ref_cm2_s' not in cell:
                continue
            y = i + (k - (len(temperatures) - 1) / 2) * 0.2
            if cell.get('ratio') is None:
                ratios.text(1.0, y, ' unresolved', fontsize='x-small', va='center', color='C3')
                continue
            low, high = (cell['ratio'] * np.exp(sign * cell['ln_ratio_err']) for sign in (-1, 1))
            ratios.errorbar(cell['ratio'], y, xerr=[[cell['ratio'] - low], [high - cell['ratio']]], fmt='o',
                            color=f'C{k}', label=t_label if i == 0 else None)  # fmt: skip
    ratios.set(xscale='log', xlabel='D / D_ref (1σ)', title='diffusion against the reference')
    for axis in (forces, ratios):  # the minor labels of a short log axis overlap
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if temperatures and any('D_ref_cm2_s' in row['temperatures'].get(t, {}) for row in rows for t in temperatures):
        ratios.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
