"""Hostile input, generated (issue #32): every profile key and every command-line option through its type's
boundary values, instead of a hand-picked list.

Each case must end in one of two ways: accepted, or one `error:` line with exit 2, before any data loads. The
profile keys come from the profile dataclasses and their documented ranges (`core.config.ranges`); the options come
from the parser itself, so a key or an option added later is walked without anyone listing it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing

import pytest

from autoshield.cli import main
from autoshield.cli.app import build_parser
from autoshield.core.config import PRESETS, Profile, load_profile, ranges
from autoshield.core.errors import AutoshieldError

NASTY_TEXT = ['""', '"../../x"', '"ü"', '"\\u0007"', '"' + "x" * 300 + '"']
NOT_NUMBERS = ["nan", "inf", "-inf", '"abc"', "true", "[1]"]


def _boundaries(low: float, high: float, whole: bool) -> list[str]:
    step = 1 if whole else (high - low) * 1e-6 or 1e-9
    values = [low - step, low, high, high + step, 0, -1, 10**12, -(10**12)]
    return [str(int(v)) if whole else repr(float(v)) for v in values]


def profile_cases() -> list[tuple[str, str]]:
    """(key, TOML value) for every profile key: its range's edges and just beyond, zero, negatives, huge numbers,
    NaN and infinities, wrong types and nasty text."""
    cases = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        bounds = ranges(cls)
        for field in dataclasses.fields(cls):
            key, hint = prefix + field.name, hints[field.name]
            if dataclasses.is_dataclass(hint):
                walk(hint, f"{key}.")
                continue
            values = [*NOT_NUMBERS, *NASTY_TEXT]
            if field.name in bounds:
                whole = int in typing.get_args(hint) or hint is int
                values += _boundaries(*bounds[field.name], whole)
            cases.extend((key, value) for value in values)

    walk(Profile, "")
    return cases


PROFILE_CASES = profile_cases()


def _one_line_refusal(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def _keys(cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [
        key
        for field in dataclasses.fields(cls)
        for key in (
            _keys(hints[field.name], f"{prefix}{field.name}.")
            if dataclasses.is_dataclass(hints[field.name])
            else [prefix + field.name]
        )
    ]


def test_every_profile_key_is_walked():
    keys = {key for key, _ in PROFILE_CASES}
    assert keys == set(_keys(Profile, ""))
    assert {"width", "attack.iterations", "train.lr", "reference.epochs", "dp_train.batch_size", "seed"} <= keys


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_profile_value_is_accepted_in_range_or_refused_in_one_line(preset, tmp_path, monkeypatch, capsys):
    """Accepted values lie inside their documented range; refused ones reach the user as one line, exit 2, with
    nothing written (the command refuses before it loads data)."""
    monkeypatch.chdir(tmp_path)
    refused = 0
    for key, value in PROFILE_CASES:
        try:
            profile = load_profile(preset, overrides=(f"{key}={value}",))
        except AutoshieldError as error:
            assert "\n" not in str(error), error
            refused += 1
            if preset == "smoke":  # the command line says it in one line, once per case (the message is the same)
                _one_line_refusal(["train", "--profile", preset, "--set", f"{key}={value}"], capsys)
            continue
        section, _, name = key.rpartition(".")
        owner = getattr(profile, section) if section else profile
        bound = ranges(type(owner)).get(name)
        accepted = getattr(owner, name)
        if bound is not None and isinstance(accepted, int | float) and not isinstance(accepted, bool):
            assert math.isfinite(accepted) and bound[0] <= accepted <= bound[1], (key, value)
    assert refused > len(PROFILE_CASES) // 2
    assert list(tmp_path.iterdir()) == []


def _options() -> list[tuple[str, argparse.Action]]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action)
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.option_strings and action.nargs != 0 and not isinstance(action, argparse._HelpAction)
    ]


def option_cases() -> list[tuple[str, str, str]]:
    """(command, option, value) for every option that takes a value: numbers at and beyond the edges, NaN,
    infinities, words for numbers, empty, non-ASCII, control characters, path-like and very long text."""
    texts = ["", "ü", "\x07", "../../escape", "x" * 300, "-1", "0", "nan", "inf", "abc", "1e400", "9" * 30]
    return [(command, action.option_strings[-1], value) for command, action in _options() for value in texts]


OPTION_CASES = option_cases()


def test_every_option_of_every_command_is_walked():
    walked = {(c, o) for c, o, _ in OPTION_CASES}
    assert ("grid", "--n-jobs") in walked and ("dashboard", "--port") in walked and ("export", "--output") in walked
    assert len(OPTION_CASES) > 300


def test_every_option_value_the_parser_refuses_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """The parser's own refusals (types, ranges, choices) for every option and value; values it accepts go on to
    the command's checks, which `test_hostile.py` and the profile walk cover."""
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    refused = 0
    for command, option, value in OPTION_CASES:
        try:
            parser.parse_args([command, option, value])
        except SystemExit:
            capsys.readouterr()
            refused += 1
            _one_line_refusal([command, option, value], capsys)
    assert refused > 100
    assert list(tmp_path.iterdir()) == []
