"""``hwnas``: the command line (its names and --json fields are the contract of DESIGN.md).

Subcommands live beside this file, one module per command group, each with
``register(sub)``; they parse arguments and print, and everything they do is a library
call a user or a benchmark can make too.
Bad input exits with code 2 and one line on stderr; ``--json`` prints one JSON document.
"""
from __future__ import annotations

import os
import sys

from core.errors import HwnasError, one_line
from nas.cli import cost, data, evaluate, export, lut, pareto, sample, search, space, train
from nas.cli.common import Parser

GROUPS = (space, cost, lut, data, evaluate, search, pareto, train, sample, export)


def build_parser() -> Parser:
    parser = Parser(prog="hwnas", description="Hardware-aware NAS for the temporal layers of video diffusion UNets.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HwnasError as exc:
        print(f"hwnas: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hwnas ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
