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
