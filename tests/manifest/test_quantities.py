"""Kubernetes quantities: exact parsing, canonical spelling, helpful errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentflowd.manifest.quantities import (
    QuantityError,
    format_cpu,
    format_duration,
    format_memory,
    parse_cpu,
    parse_duration,
    parse_memory,
)


@pytest.mark.parametrize(
    ("text", "num_bytes", "canonical"),
    [
        ("512Mi", 512 * 2**20, "512Mi"),
        ("1Gi", 2**30, "1Gi"),
        ("1024Mi", 2**30, "1Gi"),
        ("1.5Gi", 3 * 2**29, "1536Mi"),
        ("500M", 500 * 10**6, "500M"),
        ("1k", 1000, "1k"),
        (4096, 4096, "4Ki"),
        ("1000", 1000, "1k"),
        ("123", 123, "123"),
    ],
)
def test_memory(text, num_bytes, canonical):
    assert parse_memory(text) == num_bytes
    assert format_memory(num_bytes) == canonical


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("512m", "did you mean 512Mi?"),
        ("512MB", "did you mean 512Mi?"),
        ("1GB", "did you mean 1Gi?"),
        ("1Xi", "unknown unit"),
        ("0.5", "whole number of bytes"),
        ("0", "greater than zero"),
        ("-1Gi", "not a memory size"),
        (True, "not a boolean"),
        ([1], "expected a memory size"),
    ],
)
def test_memory_errors(text, fragment):
    with pytest.raises(QuantityError, match=fragment):
        parse_memory(text)


@pytest.mark.parametrize(
    ("value", "millicores", "canonical"),
    [
        ("200m", 200, "200m"),
        ("1000m", 1000, "1"),
        ("0.5", 500, "500m"),
        (2, 2000, "2"),
        (0.25, 250, "250m"),
    ],
)
def test_cpu(value, millicores, canonical):
    assert parse_cpu(value) == millicores
    assert format_cpu(millicores) == canonical


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("0.0001", "finer than one millicore"), ("2 cores", "not a CPU"), ("0m", "greater than zero")],
)
def test_cpu_errors(value, fragment):
    with pytest.raises(QuantityError, match=fragment):
        parse_cpu(value)


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("30s", 30, "30s"),
        ("300s", 300, "5m"),
        ("5m", 300, "5m"),
        ("1h30m", 5400, "90m"),
        ("2h", 7200, "2h"),
        ("500ms", 0.5, "500ms"),
        ("1.5s", 1.5, "1500ms"),
    ],
)
def test_duration(text, seconds, canonical):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert format_duration(timedelta(seconds=seconds)) == canonical


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (30, "has no unit"),
        ("30", "not a duration"),
        ("5 min", "not a duration"),
        ("1d", "not a duration"),
        ("0s", "greater than zero"),
        ("0.1ms", "finer than"),
    ],
)
def test_duration_errors(value, fragment):
    with pytest.raises(QuantityError, match=fragment):
        parse_duration(value)


@given(st.integers(min_value=1, max_value=2**62))
def test_memory_round_trips(num_bytes):
    assert parse_memory(format_memory(num_bytes)) == num_bytes


@given(st.integers(min_value=1, max_value=10**7))
def test_cpu_round_trips(millicores):
    assert parse_cpu(format_cpu(millicores)) == millicores


@given(st.integers(min_value=1, max_value=10**10))
def test_duration_round_trips(ms):
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value
