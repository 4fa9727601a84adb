"""Validation of parameter dictionaries: unknown keys, wrong types and bad values give one clear message."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED = object()


@dataclass(frozen=True)
class Option:
    """One accepted parameter: its type(s), default (``REQUIRED`` if none), help text with units and a check."""

    types: type | tuple[type, ...]
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None


def positive(value) -> str | None:
    """Check: a number > 0."""
    return None if value is None or value > 0 else 'must be positive'


def fraction(value) -> str | None:
    """Check: a number in (0, 1)."""
    return None if 0 < value < 1 else 'must be between 0 and 1'


def one_of(*choices: str) -> Callable[[Any], str | None]:
    """Check: one of the given strings."""

    def check(value) -> str | None:
        return None if value in choices else f'must be one of {", ".join(choices)}'

    return check


def _coerce(value, types: tuple[type, ...]):
    """Accept ints where floats are expected; refuse bools posing as numbers."""
    if isinstance(value, bool) and bool not in types:
        raise TypeError
    if isinstance(value, int) and float in types and int not in types:
        return float(value)
    if not isinstance(value, types):
        raise TypeError
    return value


def validate_parameters(raw: Mapping | None, schema: Mapping[str, Option], what: str = 'parameters') -> dict:
    """Return ``raw`` completed with defaults, or raise ``ValueError`` naming every problem found.

    :param raw: the user's dictionary (``None`` means all defaults).
    :param schema: accepted keys and their :class:`Option`.
    :param what: how to call the dictionary in the message.
    """
    raw = dict(raw or {})
    problems = []
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        problems.append(f'unknown key(s) {", ".join(unknown)} (accepted: {", ".join(sorted(schema))})')
    result = {}
    for key, option in schema.items():
        if key not in raw:
            if option.default is REQUIRED:
                problems.append(f'{key} is required ({option.help})')
            else:
                result[key] = option.default
            continue
        types = option.types if isinstance(option.types, tuple) else (option.types,)
        try:
            value = _coerce(raw[key], types)
        except TypeError:
            names = ' or '.join('None' if t is type(None) else t.__name__ for t in types)
            problems.append(f'{key} must be {names}, got {raw[key]!r}')
            continue
        message = option.check(value) if option.check and value is not None else None
        if message:
            problems.append(f'{key} {message}, got {value!r}')
        result[key] = value
    if problems:
        raise ValueError(f'invalid {what}: ' + '; '.join(problems) + '.')
    return result
