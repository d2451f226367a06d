"""Runs an analysis notebook headless, papermill style: parameters go in after its tagged cell.

    python -m jobs.notebooks notebooks/prediction_analysis.ipynb -p model=mnist_lite0_lr -o out.ipynb

A notebook's first cell tagged ``parameters`` holds its defaults; each ``-p name=value`` (a
Python literal, or else a string) is written into a cell inserted right after it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def inject(nb: nbformat.NotebookNode, params: dict[str, Any]) -> None:
    """Inserts ``params`` after the cell tagged ``parameters`` (first cell if none is tagged)."""
    at = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
    source = "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, cell)


def execute(path: str | Path, params: dict[str, Any], out: str | Path | None = None, timeout: int = 600) -> Any:
    """Executes the notebook at ``path`` with ``params``; raises on the first failing cell."""
    nb = nbformat.read(str(path), as_version=4)
    inject(nb, params)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    if out is not None:
        nbformat.write(nb, str(out))
    return nb


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebook")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args(argv)
    params = dict(kv.split("=", 1) for kv in args.param)
    execute(args.notebook, {k: _value(v) for k, v in params.items()}, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
