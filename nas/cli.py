"""``hwnas``: the command line (its names and --json fields are the contract of DESIGN.md).

Subcommands live beside this file, one module per group, each with ``register(sub)``.
Bad input exits with code 2 and one line on stderr; ``--json`` prints one JSON document.
"""
from __future__ import annotations

import os
import sys

from nas import cli_cost, cli_eval, cli_lut, cli_search, cli_space
from nas.cli_common import Parser
from search_spaces.errors import HwnasError

GROUPS = (cli_space, cli_cost, cli_lut, cli_eval, cli_search)


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
        print(f"hwnas: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `hwnas ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
