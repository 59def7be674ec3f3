"""``python -m models.<module>`` entry points: a command without the service package (e.g. on a bare GPU machine)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence


def module_main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], int], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``add_arguments`` (and ``-v``), log to stderr, ``run``; a ValueError is exit 2."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
