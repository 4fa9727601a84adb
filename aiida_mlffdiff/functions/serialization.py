"""Plain, JSON- and database-safe values: numpy scalars become floats, NaN and inf become None."""

from __future__ import annotations

import math

import numpy as np


def json_safe(value):
    """Return ``value`` with numpy types converted and non-finite floats replaced by ``None`` (recursively)."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(item) for item in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value
