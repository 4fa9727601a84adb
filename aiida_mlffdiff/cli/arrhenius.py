"""``aiida-mlffdiff arrhenius``: Ea, D0 and extrapolated D and σ from a D(T) table or stored diffusion results."""

from __future__ import annotations

import csv
from pathlib import Path

import click
from aiida.cmdline.utils import decorators, echo
from aiida.common.exceptions import MultipleObjectsError, NotExistent
from aiida.orm import Dict, load_node

from ..analysis import AnalysisError
from ..functions.arrhenius import arrhenius_results, fit_arrhenius
from . import cmd_root
from .utils import echo_json, format_value


def read_d_table(path: str | Path) -> list[dict]:
    """Rows of a CSV with columns ``T`` (K), ``D`` (cm²/s) and optionally ``D_error`` (cm²/s)."""
    with open(path, newline='', encoding='utf-8-sig') as handle:  # utf-8-sig: a byte-order mark is not part of 'T'
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = {'T', 'D'} - set(columns)
        if missing:
            raise AnalysisError(
                f'{Path(path).name} lacks the column(s) {", ".join(sorted(missing))}; '
                f'expected a header T,D[,D_error] (K, cm²/s), found {",".join(columns) or "nothing"}.'
            )
        rows = []
        for number, row in enumerate(reader, start=2):
            row = {key.strip(): (value or '').strip() for key, value in row.items() if key}
            try:
                entry = {'temperature_K': float(row['T']), 'D_cm2_s': float(row['D'])}
                if row.get('D_error'):
                    entry['D_err_cm2_s'] = float(row['D_error'])
            except ValueError as exception:
                raise AnalysisError(f'{Path(path).name}, line {number}: not a number ({exception}).') from exception
            if 'D_err_cm2_s' in entry and not entry['D_err_cm2_s'] > 0:
                raise AnalysisError(
                    f'{Path(path).name}, line {number}: D_error must be positive (cm²/s), got {row["D_error"]}: an '
                    'error of zero would give that point infinite weight; leave the column out to fit unweighted.'
                )
            rows.append(entry)
    if not rows:
        raise AnalysisError(f'{Path(path).name} holds no data row.')
    with_error = [row for row in rows if 'D_err_cm2_s' in row]
    if with_error and len(with_error) != len(rows):
        blank = ', '.join(f'{row["temperature_K"]:g} K' for row in rows if 'D_err_cm2_s' not in row)
        raise AnalysisError(
            f'{Path(path).name}: D_error is blank at {blank} but given for the other temperatures: give an error for '
            'every row (a weighted fit) or for none (unweighted).'
        )
    return rows


def cell_of(structure: str | Path, species: str) -> tuple[int, float]:
    """Number of ``species`` atoms and the cell volume (Å³) of any structure file ASE reads."""
    from ase.io import read

    try:
        atoms = read(structure)
    except Exception as exception:  # ASE raises many types for malformed files
        raise AnalysisError(f'cannot read structure {Path(structure).name}: {exception}') from exception
    n_ions = atoms.get_chemical_symbols().count(species)
    if n_ions == 0:
        raise AnalysisError(f'species {species!r} is absent from {Path(structure).name}.')
    if atoms.cell.rank != 3:
        raise AnalysisError(f'{Path(structure).name} has no 3D cell: the volume is needed for σ.')
    return n_ions, float(atoms.cell.volume)


@cmd_root.command('arrhenius')
@click.argument('pks', nargs=-1, type=int)
@click.option(
    '--csv', 'csv_file', type=click.Path(exists=True, dir_okay=False), help='Table with columns T,D[,D_error].'
)
@click.option(
    '--structure', type=click.Path(exists=True, dir_okay=False), help='Cell for σ (POSCAR, CIF, extxyz, ...).'
)
@click.option('-s', '--species', default='Li', show_default=True, help='Mobile species (with --structure).')
@click.option('--charge', type=float, default=1.0, show_default=True, help='Charge number of the mobile ion.')
@click.option('-T', '--temperature', type=float, default=300.0, show_default=True, help='Extrapolate to this T (K).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object instead of text.')
@decorators.with_dbenv()
def arrhenius(pks, csv_file, structure, species, charge, temperature, as_json):
    """Fit D(T) = D0 exp(-Ea/kB T) to a CSV table or to stored diffusion results PKS (compute_diffusion outputs)."""
    if bool(pks) == bool(csv_file):
        echo.echo_critical('give either diffusion result PKS or --csv FILE.')
    parameters = {'temperature_K': temperature}
    try:
        if csv_file:
            rows = read_d_table(csv_file)
            if structure:
                n_ions, volume = cell_of(structure, species)
                for row in rows:
                    row.update(n_ions=n_ions, volume_A3=volume, charge=charge)
            result = arrhenius_results(rows, parameters)
        else:
            nodes = [load_node(pk) for pk in pks]
            if any(not isinstance(node, Dict) or 'D_cm2_s' not in node.get_dict() for node in nodes):
                raise AnalysisError(
                    'every PK must be a diffusion result (the `diffusion` output of compute_diffusion).'
                )
            arrhenius_results([node.get_dict() for node in nodes], parameters)  # dry run: validate, store nothing
            output, call = fit_arrhenius.run_get_node(
                parameters=Dict(parameters), **{f'result_{i:03d}': node for i, node in enumerate(nodes)}
            )
            if not call.is_finished_ok:
                raise AnalysisError(f'fit_arrhenius<{call.pk}> failed [{call.exit_status}]: {call.exit_message}')
            result = {**output.get_dict(), 'pk': output.pk, 'calculation_pk': call.pk}
    except ValueError as exception:
        echo.echo_critical(str(exception))
    except (NotExistent, MultipleObjectsError) as exception:
        echo.echo_critical(f'cannot load the diffusion results: {exception}')
    if as_json:
        echo_json(result)
        return
    unresolved = result.get('unresolved') or {}
    level = 100 * result['confidence']
    if unresolved.get('Ea'):
        echo.echo_warning(f'Ea unresolved: {unresolved["Ea"]}')
    else:
        echo.echo_success(
            f'Ea = {format_value(result["Ea_eV"], result["Ea_err_eV"])} eV, '
            f'D0 = {format_value(result["D0_cm2_s"])} cm²/s'
        )
    for index, reason in enumerate(result.get('D_unresolved') or []):
        if reason:
            echo.echo_warning(f'D({result["temperatures_K"][index]:g} K) unresolved: {reason}')
    if unresolved.get('D_at_T'):
        echo.echo_warning(f'D({temperature:g} K) unresolved: {unresolved["D_at_T"]}')
    else:
        low, high = result['D_interval_cm2_s']
        echo.echo(
            f'D({temperature:g} K) = {format_value(result["D_at_T_cm2_s"])} cm²/s, '
            f'{level:.0f} % interval [{low:.3g}, {high:.3g}]'
        )
    if result.get('sigma_at_T_mS_cm') is not None and unresolved.get('sigma_at_T'):
        echo.echo_warning(f'σ({temperature:g} K) unresolved: {unresolved["sigma_at_T"]}')
    elif result.get('sigma_at_T_mS_cm') is not None:
        low, high = result['sigma_interval_mS_cm']
        echo.echo(
            f'σ({temperature:g} K) = {format_value(result["sigma_at_T_mS_cm"])} mS/cm, interval [{low:.3g}, {high:.3g}]'
        )
    for warning in result['warnings']:
        echo.echo_warning(warning)
    if 'pk' in result:
        echo.echo(f'Arrhenius result: Dict<{result["pk"]}>  (aiida-mlffdiff plot {result["pk"]})')
