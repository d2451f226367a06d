"""Data conversions: MNIST idx files to image folders, and image folders up to Blob Storage.

    python -m jobs.convert mnist-to-folders --data DIR --out DIR [--class_names A B …]
    python -m jobs.convert upload SRC_DIR DEST_URI [--workers 16]

``mnist-to-folders`` writes ``<out>/train/<label>/<index>.png`` and ``<out>/test/…`` (the
folder-per-label layout that ``--dataset aerial`` reads), in parallel processes. ``upload``
copies every file under SRC_DIR to DEST_URI (any storage URI, e.g. ``wasbs://…``), as AzCopy
did for the original sample, with parallel uploads. Both show progress on stderr and end by
counting what was written against what was expected; a mismatch is an error (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys

from jobs.config import add_summary_flag, plain
from jobs.workflows import command, convert

JOB = "convert"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_summary_flag(p)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mnist-to-folders")
    m.add_argument("--data", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--class_names", nargs="+")
    m.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    u = sub.add_parser("upload")
    u.add_argument("src")
    u.add_argument("dest")
    u.add_argument("--workers", type=int, default=16)
    args = p.parse_args(argv)
    if args.command == "mnist-to-folders":
        return command.run(JOB, lambda: convert.mnist_to_folders(args.data, args.out, args.class_names, args.workers))
    return command.run(JOB, lambda: convert.upload(args.src, args.dest, args.workers))


if __name__ == "__main__":
    sys.exit(main())
