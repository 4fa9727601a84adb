"""Stand-alone scripts shipped into a CalcJob's folder and run by an engine environment's python (no AiiDA there)."""

from __future__ import annotations

from pathlib import Path

DRIVERS_DIRECTORY = Path(__file__).resolve().parent


def driver_path(name: str) -> Path:
    """Absolute path of the driver script ``name`` (``'evaluate_model'`` or ``'evaluate_model.py'``).

    :raises FileNotFoundError: naming the drivers that exist.
    """
    filename = name if name.endswith('.py') else f'{name}.py'
    path = DRIVERS_DIRECTORY / filename
    if filename == '__init__.py' or not path.is_file():
        available = sorted(p.stem for p in DRIVERS_DIRECTORY.glob('*.py') if p.name != '__init__.py')
        raise FileNotFoundError(f'no driver called {name!r}; available: {", ".join(available) or "none"}.')
    return path


__all__ = ('DRIVERS_DIRECTORY', 'driver_path')
