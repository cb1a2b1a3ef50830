"""Defaults for ``manyget get`` from a TOML file, checked like the command line.

The file is ``$MANYGET_CONFIG`` when set (it must then exist), else
``$XDG_CONFIG_HOME/manyget/config.toml`` (``~/.config/manyget/config.toml``) when there is
one. Its ``[get]`` table holds any of ``get``'s long options, spelled as on the command
line without the dashes (``per-host = 4``, ``header = ["Accept: */*"]``), each checked by
the same rule as its option; the command line wins over the file, and ``--no-config``
ignores it. ``--insecure`` may be set there, and then says so on every run, naming the
file.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import UsageError

__all__ = ["Config", "configurable", "find_config", "load_config"]

# get's options that only make sense for one run: never taken from the file.
_PER_RUN = frozenset({"urls", "input", "help", "log_file"})


@dataclass
class Config:
    """The file's defaults for ``get``, by argparse destination, and where they came from."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)


def find_config(environ: dict[str, str] | None = None) -> Path | None:
    """The config file to read, or None; ``MANYGET_CONFIG`` must name one that exists."""
    env = os.environ if environ is None else environ
    named = env.get("MANYGET_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise UsageError(f"MANYGET_CONFIG names {named!r}, which is not a file")
        return path
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    path = Path(base) / "manyget" / "config.toml"
    return path if path.is_file() else None


def configurable(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``parser``'s options a config file may set, by their name in the file."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse has no public list of its actions
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or action.dest in _PER_RUN:
            continue
        for option in longs:
            found[_key(option[2:])] = action
        found.setdefault(_key(action.dest), action)  # "headers", "http": as the API says
    return found


def load_config(path: Path, parser: argparse.ArgumentParser) -> Config:
    """Read ``path``'s ``[get]`` table into checked defaults for ``parser`` (get's)."""
    import tomllib

    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"config {path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path}: not valid TOML: {exc}") from None
    unknown_tables = sorted(set(data) - {"get"})
    if unknown_tables:
        raise UsageError(f"config {path}: unknown key {unknown_tables[0]!r} (use a [get] table)")
    table = data.get("get", {})
    if not isinstance(table, dict):
        raise UsageError(f"config {path}: 'get' must be a table")
    options = configurable(parser)
    consts: dict[str, list[object]] = {}  # --http1.1 and its kind share one destination
    for option in options.values():
        if isinstance(option, argparse._StoreConstAction) and option.const not in (True, False):
            known = consts.setdefault(option.dest, [])
            if option.const not in known:
                known.append(option.const)
    values: dict[str, Any] = {}
    for key, raw in table.items():
        action = options.get(_key(key))
        if action is None:
            raise UsageError(f"config {path}: unknown key {key!r} (not an option of get)")
        try:
            if _key(key) == _key(action.dest) and action.dest in consts:
                allowed = consts[action.dest]
                if raw not in allowed:
                    raise ValueError(f"must be one of {', '.join(map(str, allowed))}, got {raw!r}")
                values[action.dest] = raw
                continue
            values[action.dest] = _convert(action, raw)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise UsageError(f"config {path}: key {key!r}: {exc}") from None
    return Config(path, values)


def _key(name: str) -> str:
    """An option's name as the file may spell it: ``per-host``, ``per_host``; ``http1.1``,
    ``http1_1``."""
    return name.replace("_", "-").replace(".", "-")


def _convert(action: argparse.Action, raw: object) -> object:
    """``raw`` from TOML, checked and converted as the command line would."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(raw, bool):
            raise TypeError(f"must be true or false, got {raw!r}")
        return raw if isinstance(action, argparse._StoreTrueAction) else not raw
    if isinstance(action, argparse._StoreConstAction):  # --http1.1 and its kind
        if raw is not True:
            raise TypeError("may only be set to true")
        return action.const
    if isinstance(action, argparse._AppendAction):
        items = raw if isinstance(raw, list) else [raw]
        return [_one(action, item) for item in items]
    return _one(action, raw)


def _one(action: argparse.Action, raw: object) -> object:
    if isinstance(raw, (dict, list)) or raw is None:
        raise TypeError(f"must be a single value, got {raw!r}")
    text = str(raw).lower() if isinstance(raw, bool) else str(raw)
    value = action.type(text) if callable(action.type) else text
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ValueError(f"must be one of {choices}, got {raw!r}")
    return value
