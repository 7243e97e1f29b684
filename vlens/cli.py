"""The `vlens` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vlens",
        description="TransformerLens-style interpretability for video LLMs.",
        epilog="Example: vlens demo --out vlens-demo",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="an end-to-end run on a small local checkpoint (no network)")
    demo.add_argument("--out", default=None, help="directory for the checkpoint and outputs (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from vlens.demo import main as demo_main

        demo_main(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
