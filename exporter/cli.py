"""Command line: `python -m exporter [SUBCOMMAND] ...` (console script `ortops-export`).

Subcommands live in their own modules, each with HELP, `add_arguments(parser)` and
`run(args) -> int`; `export` is the default when the first argument names no subcommand, so
`python -m exporter gpt2-tiny -o m.onnx` means `python -m exporter export gpt2-tiny -o m.onnx`.
A new subcommand (e.g. `finetune`) is one line in SUBCOMMANDS.

Exit codes: 0 success; 1 the export ran but failed (validation above tolerance, runtime error);
2 bad input (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import importlib
import sys

PROG = "ortops-export"
DEFAULT_SUBCOMMAND = "export"
SUBCOMMANDS = {
    "export": "exporter.export_command",
    "finetune": "exporter.finetune_command",
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; one line is easier to read and to test."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Export Hugging Face models to ONNX with com.ortops custom ops "
                    "(MultigrainAttention, TSVDMatMul). Default subcommand: export.",
        epilog=f"Run '{PROG} SUBCOMMAND --help' for a subcommand's options.",
    )
    subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", parser_class=OneLineParser)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv in ([], ["-h"], ["--help"]):
        parser.print_help()
        print(f"\nOptions of the default subcommand '{DEFAULT_SUBCOMMAND}':\n")
        parser.parse_args([DEFAULT_SUBCOMMAND, "--help"])  # prints and exits 0
    if argv[0] not in SUBCOMMANDS:
        argv.insert(0, DEFAULT_SUBCOMMAND)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
