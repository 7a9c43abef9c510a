"""Kubernetes-style quantities: memory (``512Mi``), CPU (``200m``) and durations (``30s``).

Each quantity parses to an exact integer (bytes, millicores, milliseconds), so ``1Gi`` and
``1024Mi`` are the same value, and formats back to one canonical spelling (the largest unit that
divides it exactly). The canonical form of a manifest, and so its hash, uses that spelling.

Errors name the mistake people make: ``memory: 512m`` is 0.512 bytes in Kubernetes' grammar, so
we refuse it and suggest ``512Mi`` rather than silently asking for half a byte.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

__all__ = [
    "QuantityError",
    "format_cpu",
    "format_duration",
    "format_memory",
    "parse_cpu",
    "parse_duration",
    "parse_memory",
]


class QuantityError(ValueError):
    """A quantity string does not parse; the message says what was expected."""


MAX_BYTES = 2**63 - 1
MAX_MILLICORES = 10**9
MAX_DURATION_MS = 366 * 24 * 3_600_000

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_MEMORY_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)")
_DURATION_UNITS_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - guarded by the regexes
        raise QuantityError(f"{text!r} is not a number") from exc


def parse_memory(value: object) -> int:
    """Bytes from ``512Mi``, ``1Gi``, ``128M``, ``1.5Gi`` or a plain integer of bytes."""
    if isinstance(value, bool):
        raise QuantityError("expected a memory size such as 512Mi or 1Gi, not a boolean")
    if isinstance(value, int):
        if value <= 0:
            raise QuantityError("memory must be greater than zero")
        if value > MAX_BYTES:
            raise QuantityError(f"{value} bytes is more than 8Ei")
        return value
    if not isinstance(value, str):
        raise QuantityError(f"expected a memory size such as 512Mi or 1Gi, got {value!r}")
    text = value.strip()
    match = _MEMORY_RE.match(text)
    if not match:
        raise QuantityError(f"{value!r} is not a memory size; use e.g. 512Mi, 1Gi or 500M")
    number, suffix = _decimal(match.group(1)), match.group(2)
    if suffix in _BINARY:
        factor = _BINARY[suffix]
    elif suffix in _DECIMAL:
        factor = _DECIMAL[suffix]
    elif suffix == "":
        factor = 1
    elif suffix == "m" or suffix.lower() in {"mb", "mib"}:
        raise QuantityError(f"{value!r} is not a memory size; did you mean {match.group(1)}Mi?")
    elif suffix.lower() in {"gb", "gib", "g"}:
        raise QuantityError(f"{value!r} is not a memory size; did you mean {match.group(1)}Gi?")
    elif suffix.lower() in {"kb", "kib", "k"}:
        raise QuantityError(f"{value!r} is not a memory size; did you mean {match.group(1)}Ki?")
    else:
        raise QuantityError(
            f"{value!r} has an unknown unit {suffix!r}; use Ki, Mi, Gi, Ti (or k, M, G, T)"
        )
    total = number * factor
    if total != total.to_integral_value():
        raise QuantityError(f"{value!r} is not a whole number of bytes")
    if total <= 0:
        raise QuantityError("memory must be greater than zero")
    if total > MAX_BYTES:
        raise QuantityError(f"{value!r} is more than 8Ei")
    return int(total)


def format_memory(num_bytes: int) -> str:
    """Canonical spelling: the largest exact binary unit, else decimal unit, else bytes."""
    for suffix, factor in reversed(_BINARY.items()):
        if num_bytes % factor == 0:
            return f"{num_bytes // factor}{suffix}"
    for suffix, factor in reversed(_DECIMAL.items()):
        if num_bytes % factor == 0:
            return f"{num_bytes // factor}{suffix}"
    return str(num_bytes)


def parse_cpu(value: object) -> int:
    """Millicores from ``200m``, ``0.5``, ``1`` or ``2``: Kubernetes' CPU grammar."""
    if isinstance(value, bool):
        raise QuantityError("expected a CPU quantity such as 200m or 1, not a boolean")
    if isinstance(value, int | float):
        number = _decimal(repr(value))
        suffix = ""
    elif isinstance(value, str):
        text = value.strip()
        suffix = "m" if text.endswith("m") else ""
        body = text[:-1] if suffix else text
        if not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", body):
            raise QuantityError(f"{value!r} is not a CPU quantity; use e.g. 200m, 500m or 1")
        number = _decimal(body)
    else:
        raise QuantityError(f"expected a CPU quantity such as 200m or 1, got {value!r}")
    if not number.is_finite():
        raise QuantityError(f"{value!r} is not a CPU quantity; use e.g. 200m, 500m or 1")
    milli = number if suffix else number * 1000
    if milli > MAX_MILLICORES:
        raise QuantityError(f"{value!r} is more than 1,000,000 cores")
    if milli != milli.to_integral_value():
        raise QuantityError(f"{value!r} is finer than one millicore (1m)")
    if milli <= 0:
        raise QuantityError("cpu must be greater than zero")
    return int(milli)


def format_cpu(millicores: int) -> str:
    """Canonical spelling: whole cores as ``2``, anything else as ``500m``."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def parse_duration(value: object) -> timedelta:
    """A duration from ``30s``, ``5m``, ``1h30m``, ``500ms`` or ``1.5s`` (Go's grammar, no days).

    A bare number is refused: ``timeout: 30`` could mean seconds or minutes, and a manifest
    should say which.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or isinstance(value, int | float):
        raise QuantityError(f"{value!r} has no unit; write e.g. {value}s or {value}m")
    if not isinstance(value, str):
        raise QuantityError(f"expected a duration such as 30s or 5m, got {value!r}")
    text = value.strip()
    pos, total = 0, Decimal(0)
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += _decimal(match.group(1)) * _DURATION_UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise QuantityError(
            f"{value!r} is not a duration; use e.g. 30s, 5m, 1h30m or 500ms (units h, m, s, ms)"
        )
    if total != total.to_integral_value():
        raise QuantityError(f"{value!r} is finer than one millisecond")
    if total <= 0:
        raise QuantityError("a duration must be greater than zero")
    if total > MAX_DURATION_MS:
        raise QuantityError(f"{value!r} is longer than 366 days")
    return timedelta(milliseconds=int(total))


def format_duration(value: timedelta) -> str:
    """Canonical spelling: the largest of h, m, s, ms that divides the duration exactly."""
    ms = round(value.total_seconds() * 1000)
    for suffix in ("h", "m", "s"):
        unit = _DURATION_UNITS_MS[suffix]
        if ms % unit == 0:
            return f"{ms // unit}{suffix}"
    return f"{ms}ms"
