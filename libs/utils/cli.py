"""What every command-line script shares: `--cfg FILE KEY VAL ...` parsing and one-line errors."""
import argparse
import logging
import sys
from typing import Callable, List, Optional

from yacs.config import CfgNode

from libs.config import load_cfg
from libs.errors import VOSError


def parse_cfg(description: str, argv: Optional[List[str]] = None) -> CfgNode:
    """Parse `--cfg FILE` and trailing `KEY VAL` pairs into a frozen, validated config."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg", default="", help="YAML config file (keys: libs/config/defaults.py)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VAL pairs overriding the config")
    args = parser.parse_args(argv)
    return load_cfg(args.cfg or None, args.opts)


def run_main(main: Callable[[], None]) -> None:
    """Run `main`; a VOSError becomes one `error: ...` line and exit code 2; Ctrl-C exits 130."""
    try:
        main()
    except VOSError as err:
        logging.getLogger("main").debug("error", exc_info=True)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
