"""Argument checks: bad input is refused, saying what was wrong and what is allowed, before
any process is forked."""

from __future__ import annotations

import math
import numbers

from labkit.i18n import _


def count(value: object, name: str, *, low: int = 0, high: int | None = None,
          why_high: str = "") -> int:
    """An int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(_("{name} must be a whole number (an int), not {value!r} of type {kind}")
                        .format(name=name, value=value, kind=type(value).__name__))
    value = int(value)
    if value < low:
        raise ValueError(_("{name} must be at least {low}, not {value}").format(
            name=name, low=low, value=value))
    if high is not None and value > high:
        raise ValueError(_("{name}={value} is too large: at most {high} {why}").format(
            name=name, value=value, high=high, why=why_high).rstrip())
    return value


def seconds(value: object, name: str, *, low: float = 0.0, high: float) -> float:
    """A finite real number of seconds in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(_("{name} must be a number of seconds, not {value!r} of type {kind}")
                        .format(name=name, value=value, kind=type(value).__name__))
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(_("{name} must be a finite number of seconds, not {value}").format(
            name=name, value=value))
    if not low <= value <= high:
        raise ValueError(_("{name} must be between {low:g} and {high:g} seconds, not {value:g}")
                         .format(name=name, low=low, high=high, value=value))
    return value


def choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(_("{name} must be one of {allowed}, not {value!r} of type {kind}").format(
            name=name, allowed=", ".join(map(repr, allowed)), value=value,
            kind=type(value).__name__))
    if value not in allowed:
        raise ValueError(_("unknown {name} {value!r}: choose one of {allowed}").format(
            name=name, value=value, allowed=", ".join(map(repr, allowed))))
    return value


def flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(_("{name} must be True or False, not {value!r}")
                        .format(name=name, value=value))
    return value
