"""EmulatorConfig and Faults: validation, JSON, and the command-line flags made from them."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest

import aiotts.emulator
from aiotts.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    Faults,
)
from aiotts.emulator._cli import add_arguments, config_from_args, faults_from_args
from aiotts.emulator._process import to_args


def test_public_names_are_sorted_and_importable() -> None:
    names = aiotts.emulator.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(aiotts.emulator, name) is not None


def test_defaults() -> None:
    config = EmulatorConfig()
    assert dict(config.credentials) == {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
    assert config.token_lifetime == 3600
    assert config.token_failure_limit == 5
    assert config.token_lockout == 600
    assert config.retention == 86400
    assert config.trial_max_chars == 500
    assert config.trial_daily_limit == 10
    assert not Faults().any_transient
    assert not Faults().any_body


def test_frozen_slotted_and_hashable() -> None:
    config = EmulatorConfig()
    assert hash(config) == hash(EmulatorConfig())
    assert hash(Faults()) == hash(Faults())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3  # type: ignore[misc]
    assert not hasattr(config, "__dict__")
    assert not hasattr(Faults(), "__dict__")


def test_credentials_are_copied_read_only() -> None:
    creds = {"a": "b"}
    config = EmulatorConfig(credentials=creds)
    creds["c"] = "d"
    assert dict(config.credentials) == {"a": "b"}
    with pytest.raises(TypeError):
        config.credentials["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"credentials": {}},
        {"credentials": {"": "x"}},
        {"token_lifetime": 0},
        {"token_lockout": -1},
        {"pending_seconds": -0.1},
        {"pending_seconds": (2, 1)},
        {"processing_seconds": (1, 2, 3)},
        {"error_share": 1.5},
        {"error_messages": ()},
        {"retention": float("inf")},
        {"trial_max_chars": 0},
        {"audio_bytes": 46},
        {"chunk_bytes": 0},
    ],
)
def test_config_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        EmulatorConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency": -1},
        {"server_error_share": 2},
        {"server_error_statuses": (404,)},
        {"server_error_statuses": ()},
        {"server_error_share": 0.6, "rate_limit_share": 0.5},
        {"non_json_share": 0.5, "html_share": 0.6},
        {"cut_at": 1.0},
        {"trickle_chunk_bytes": 0},
        {"trickle_chunk_bytes": 1.5},
        {"cut_share": "half"},
        {"always_401": "yes"},
    ],
)
def test_faults_reject(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Faults(**kwargs)


def test_duration_ranges_are_normalised() -> None:
    config = EmulatorConfig(pending_seconds=[0.5, 3], processing_seconds=2)  # type: ignore[arg-type]
    assert config.pending_seconds == (0.5, 3.0)
    assert config.processing_seconds == 2.0


def test_faults_json_round_trip() -> None:
    faults = Faults(latency=0.1, server_error_statuses=(503,), escape_share=1, always_401=True)
    assert Faults.from_json(faults.to_json()) == faults
    with pytest.raises(ValueError, match="unknown fault knobs: nope"):
        Faults.from_json({"nope": 1})


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_no_flags_mean_the_defaults() -> None:
    args = parse([])
    assert config_from_args(args) == EmulatorConfig()
    assert faults_from_args(args) == Faults()
    assert (args.host, args.port, args.tls_cert, args.log_level) == (
        "127.0.0.1",
        8080,
        None,
        "warning",
    )


def test_every_knob_is_a_flag() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    dests = {action.dest for action in parser._actions}
    for cls in (EmulatorConfig, Faults):
        for f in dataclasses.fields(cls):
            assert f.name in dests


def test_flags_round_trip_through_to_args() -> None:
    config = EmulatorConfig(
        credentials={"id-1": "s1", "id-2": "s2"},
        token_lifetime=2.5,
        pending_seconds=(0.5, 3.0),
        processing_seconds=0,
        error_share=0.25,
        error_messages=("first", "second"),
        trial_daily_limit=3,
        audio_bytes=100_000,
        seed=7,
    )
    faults = Faults(
        latency=0.01,
        server_error_share=0.1,
        server_error_statuses=(502, 503),
        retry_after_http_date=True,
        cut_share=0.2,
        escape_share=1.0,
        always_401=True,
    )
    args = parse(to_args(config, faults))
    assert config_from_args(args) == config
    assert dict(config_from_args(args).credentials) == {"id-1": "s1", "id-2": "s2"}
    assert faults_from_args(args) == faults


def test_bad_flag_values_are_usage_errors() -> None:
    with pytest.raises(SystemExit):
        parse(["--pending-seconds", "soon"])
    with pytest.raises(SystemExit):
        parse(["--client", "no-secret"])
