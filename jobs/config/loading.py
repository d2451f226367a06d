"""A configuration from a TOML file and flags: each value typed against the schema, and where it
came from recorded (flag > conf > the data set's recipe > default)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any

from jobs.classifiers import estimators
from jobs.config.schema import SCENES, ConfigError, FinetuneConfig, ScoreConfig
from jobs.runtime.suggest import did_you_mean
from jobs.runtime.tomlfiles import read_toml


def read_conf(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    return read_toml(path, ConfigError, f"conf file {path}")


def build(cls: type, conf_path: str | None, cli: dict[str, Any]) -> Any:
    """``cls`` filled from the conf file, then from the CLI values that were given (classifier
    flags, such as ``regParam``, into the chosen classifier's table); each key's source recorded."""
    # One conf file serves every job: each takes its own keys; a key no job knows is an error.
    values = read_conf(conf_path)
    unknown = sorted(set(values) - _fields(FinetuneConfig) - _fields(ScoreConfig))
    if unknown:
        everything = _fields(FinetuneConfig) | _fields(ScoreConfig)
        named = ", ".join(k + did_you_mean(k, everything) for k in unknown)
        raise ConfigError(f"{conf_path}: unknown keys {named}")
    known = _fields(cls)
    mine = {k: v for k, v in values.items() if k in known}
    hints = typing.get_type_hints(ScoreConfig) | typing.get_type_hints(FinetuneConfig)
    for key, value in values.items():  # every key, the other job's too: a conf is checked whole
        if not _is_a(value, hints[key]):
            expected = _describe(hints[key])
            raise ConfigError(f"{conf_path}: {key} = {value!r} is {_toml_type(value)}, expected {expected}")
    classifier_flags = {k: cli.pop(k) for k in estimators.FLAGS if cli.get(k) is not None}
    for k in estimators.FLAGS:
        cli.pop(k, None)
    given = {k: v for k, v in cli.items() if v is not None and k in known}
    # A flag is what the user asked for now: --sample_frac beats the conf's per-split fractions.
    for general, specific in SHADOWS.items():
        if general in given:
            for key in specific:
                if key not in given:
                    mine.pop(key, None)
    mine.update(given)
    cfg = cls(**mine)
    check_numbers(cfg)
    if getattr(cfg, "scenes", "") is None:  # scene settings given as flags to a tile run do nothing: say so
        idle = sorted(f.name for f in dataclasses.fields(cfg) if f.metadata.get("group") == SCENES and f.name in given)
        if idle:
            raise ConfigError(f"{', '.join('--' + k for k in idle)} apply to --scenes only, not to a tile set")
    unset = {k for k in known if getattr(cfg, k) is None}
    cfg.validate()  # fills what is still unset from the data set's recipe

    def source(key: str) -> str:
        if key in given:
            return "flag"
        if key in mine:
            return "conf"
        return "recipe" if key in unset and getattr(cfg, key) is not None else "default"

    sources = {k: source(k) for k in sorted(known) if k not in estimators.NAMES}
    chosen = getattr(cfg, "mmlspark_model_type", None)
    if chosen in estimators.NAMES:
        table = getattr(cfg, chosen)
        from_conf = set(table)
        table.update(classifier_flags)  # flags win over the conf's table
        for key, value in table.items():
            _check_number(f"{chosen}.{key}", value, None, None)
        for key in sorted(set(estimators.DEFAULTS[chosen]) | set(table)):
            where = "flag" if key in classifier_flags else "conf" if key in from_conf else "default"
            sources[f"{chosen}.{key}"] = where
    elif classifier_flags:
        raise ConfigError(f"{', '.join('--' + k for k in classifier_flags)}: only a train run takes classifier flags")
    cfg.sources = sources  # for the start line and the run record
    return cfg


JAVA_INT = (-(1 << 31), (1 << 31) - 1)  # Spark ML's integer parameters are Java ints


def check_numbers(cfg: Any) -> None:
    """Every number set is finite and in its declared range (integers within Java's int), so that
    a seed of 10^20 or a NaN value range is a one-line error, not a JVM trace or a black map."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        for item in value if isinstance(value, list) else [value]:
            _check_number(f.name, item, f.metadata.get("low"), f.metadata.get("high"))


def _check_number(key: str, value: Any, low: float | None, high: float | None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} {value}: give a finite number")
    if isinstance(value, int) and not JAVA_INT[0] <= value <= JAVA_INT[1]:
        raise ConfigError(f"{key} {value}: too large (at most {JAVA_INT[1]})")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = [f"at least {low:g}" if low is not None else "", f"at most {high:g}" if high is not None else ""]
        if low is not None and high is not None:
            bounds = [f"from {low:g} to {high:g}"]
        raise ConfigError(f"{key} {value}: give a value {' '.join(b for b in bounds if b)}")


SHADOWS = {"sample_frac": ("train_sample_frac", "test_sample_frac")}


def resolved(cfg: Any) -> dict[str, Any]:
    """``{key: {"value", "from"}}``: the configuration a run used and where each value came from
    (flag > conf > the data set's recipe > default)."""
    sources = getattr(cfg, "sources", {})
    values = dataclasses.asdict(cfg)
    chosen = values.get("mmlspark_model_type")
    if chosen in estimators.NAMES:  # the chosen classifier's settings, defaults included
        for key, value in {**estimators.DEFAULTS[chosen], **values[chosen]}.items():
            values[f"{chosen}.{key}"] = value
    rows = {k: {"value": v, "from": sources.get(k, "default")} for k, v in sorted(values.items())}
    return {k: r for k, r in rows.items() if k not in estimators.NAMES}  # the tables, shown key by key


def describe(cfg: Any) -> str:
    """The resolved configuration as lines for stderr at start: ``key = value  (from)``."""
    rows = resolved(cfg)
    width = max(map(len, rows))
    return "\n".join(f"  {k:<{width}} = {json.dumps(r['value'])}  ({r['from']})" for k, r in rows.items())


def _is_a(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field's type (an int is a float; a bool is not a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is_a(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is list:
        return isinstance(value, list) and all(_is_a(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in args)
    if typing.get_origin(hint) is list:
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s"
    if typing.get_origin(hint) is dict:
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def _toml_type(value: Any) -> str:
    kinds = {str: "a string", bool: "a boolean", int: "an integer", float: "a float", list: "a list", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
