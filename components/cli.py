"""The command line: `python -m components {watch,join,validate,schema} ...`.

Every failure the user can cause (bad id, bad URL, unreachable broker, invalid app
file) prints one clear line per problem on stderr and exits non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m components", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check app files against the schema")
    validate.add_argument("files", nargs="+", metavar="FILE")

    commands.add_parser("schema", help="print the app-file JSON Schema")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "validate":
        from .app_file import validate_command

        return validate_command(args.files, stderr=sys.stderr)
    if args.command == "schema":
        from .app_file import schema_command

        return schema_command(stdout=sys.stdout)
    raise AssertionError(f"unhandled command {args.command!r}")
