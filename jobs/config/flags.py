"""Command-line flags made from the schema: each setting's flag, type, choices and help come from
its declaration in :mod:`jobs.config.schema`, and its default from the job or the recipe."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from jobs.classifiers import estimators
from jobs.config.loading import build
from jobs.config.recipes import RECIPES
from jobs.runtime.suggest import did_you_mean

SUMMARY_FILE = "summary_file"


def parse(cls: type, argv: list[str] | None, description: str | None) -> Any:
    """The job's configuration: conf file, then the flags given in ``argv``."""
    p = parser(cls, description)
    known, unknown = p.parse_known_args(argv)
    if unknown:  # argparse's own message, with the flag it was probably meant to be
        flags = [s for a in p._actions for s in a.option_strings]  # argparse keeps no public list
        p.error("unrecognized arguments: " + " ".join(u + did_you_mean(u, flags) for u in unknown))
    args = vars(known)
    args.pop(SUMMARY_FILE)
    return build(cls, args.pop("conf"), args)


def plain(doc: str | None) -> str | None:
    """A module docstring as ``--help`` shows it: reStructuredText roles and literals as plain text."""
    if doc is None:
        return None
    doc = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc)  # :mod:`jobs.maps` -> jobs.maps
    return re.sub(r"``([^`]+)``", r"\1", doc)  # ``_SUCCESS`` -> _SUCCESS


def parser(cls: type, description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=plain(description), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conf", help="TOML file in conf/; flags given here override it")
    add_summary_flag(p)
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("flag", False):
            continue
        title = f.metadata.get("group")
        where = groups.setdefault(title, p.add_argument_group(title)) if title else p
        kind, action = _kind(hints[f.name])
        kwargs: dict[str, Any] = {"help": f"{f.metadata['help']} (default: {_default(cls, f)})"}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if action is not None:
            kwargs["action"] = action
        else:
            kwargs["type"] = kind
        where.add_argument(f"--{f.name}", **kwargs)
        if action is Switch:
            hidden = {"dest": f.name, "default": None, "help": argparse.SUPPRESS}
            where.add_argument(f"--no-{f.name}", action="store_false", **hidden)
    if "mmlspark_model_type" in hints:
        classifier = p.add_argument_group("classifier settings (pyspark.ml names; over the conf's [classifier] table)")
        for flag in estimators.FLAGS:  # snake_case as every other flag; pyspark.ml's camelCase kept as an alias
            snake = re.sub(r"(?<!^)([A-Z])", r"_\1", flag).lower()
            classifier.add_argument(
                f"--{snake}", f"--{flag}", dest=flag, type=estimators.FLAG_TYPES[flag], help=estimators.FLAG_HELP[flag]
            )
    return p


class Switch(argparse.Action):
    """A boolean setting: ``--key`` sets it, ``--no_key`` clears it (snake_case like every other
    flag). :func:`parser` adds ``--no-key``, argparse's own spelling, as an alias hidden from ``--help``."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        key = option_strings[0].removeprefix("--")
        super().__init__([f"--{key}", f"--no_{key}"], dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: str | None = None) -> None:
        setattr(namespace, self.dest, not (option or "").startswith("--no"))

    def format_usage(self) -> str:
        return " | ".join(self.option_strings[:2])


def add_summary_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(f"--{SUMMARY_FILE}", help="also write the one-line JSON summary to this local file")


def _kind(hint: Any) -> tuple[Callable[[str], Any] | None, Any]:
    """The flag's parser for a field's type (an optional's inner type; lists comma-separated),
    or a boolean ``--key/--no_key`` switch."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        hint = args[0]
    if hint is bool:
        return None, Switch
    if typing.get_origin(hint) is list:
        item = typing.get_args(hint)[0]

        def items(text: str) -> list[Any]:
            return [item(x) for x in text.split(",")]

        items.__name__ = f"comma-separated {item.__name__}"  # what argparse names in its error
        return items, None
    return hint, None


def _default(cls: type, f: dataclasses.Field[Any]) -> str:
    """The job's own default, or what the data set's recipe gives when the flag is left out."""
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = None
    # Recipes fill only configs that take one (training's); scoring's unset means the model's own.
    takes_recipe = any(g.name == "recipe" for g in dataclasses.fields(cls))
    by_dataset = {d: r[f.name] for d, r in RECIPES.items() if f.name in r} if takes_recipe else {}
    if default is None and by_dataset:
        return "the data set's recipe: " + ", ".join(f"{d} {json.dumps(v)}" for d, v in by_dataset.items())
    if default is None:
        return "unset"
    if isinstance(default, list):
        return ",".join(map(str, default))
    return json.dumps(default)
