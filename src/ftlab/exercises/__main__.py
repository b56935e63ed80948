"""python -m ftlab.exercises student [OUT] | grade NOTEBOOK..."""

from __future__ import annotations

import argparse
import sys

import nbformat


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftlab.exercises",
                                     description="Build the student version, or grade notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("student", help="write the student version of every notebook")
    s.add_argument("out", nargs="?", default="student", help="output folder (default: student)")
    s.add_argument("--notebooks", default="notebooks", help="the instructor notebooks")
    g = sub.add_parser("grade", help="grade the exercise cells of submitted notebooks")
    g.add_argument("notebooks", nargs="+")
    g.add_argument("--timeout", type=int, default=None, help="seconds per cell (default 30)")
    args = parser.parse_args(argv)

    from .student import CELL_TIMEOUT_S, build_student, grade

    if args.command == "student":
        written = build_student(args.out, args.notebooks)
        print(f"student version: {len(written)} notebooks in {args.out}/ (solutions replaced "
              "by stubs, checks kept)")
        return 0
    for path in args.notebooks:
        grades, _ = grade(nbformat.read(path, as_version=4), args.timeout or CELL_TIMEOUT_S)
        print(f"{path}\n{grades}")
        for err in grades.errors:
            print(f"  not a check cell, but it failed: {err.splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
