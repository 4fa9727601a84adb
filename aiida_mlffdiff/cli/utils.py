"""Small helpers shared by the commands: JSON output and formatting numbers with units."""

from __future__ import annotations

import json

import click

from ..functions.serialization import json_safe


def echo_json(data: dict) -> None:
    """Print ``data`` as one JSON object (NaN/inf as null)."""
    click.echo(json.dumps(json_safe(data), indent=2, sort_keys=True))


def format_value(value: float | None, error: float | None = None, digits: int = 3) -> str:
    """``1.23e-05 ± 4.5e-07`` (or ``n/a``)."""
    if value is None:
        return 'n/a'
    text = f'{value:.{digits}g}'
    return text if error is None else f'{text} ± {error:.2g}'
