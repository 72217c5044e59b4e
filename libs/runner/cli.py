"""What every command-line script shares: `--cfg FILE KEY VAL ...` parsing, the model keys (and the
training input size) a checkpoint carries, and one-line errors."""
import argparse
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from yacs.config import CfgNode

from ..config import Adjust, load_cfg
from ..errors import VOSError
from ..models.checkpoint import MODEL_KEYS, read_checkpoint, stored_model_config

log = logging.getLogger("config")
KEYS_HELP = "Every key, with its default and what it does: libs/config/defaults.py"


def parse_cfg(description: str, argv: Optional[List[str]] = None, examples: str = "",
              keys: Sequence[Tuple[str, str]] = (), adjust: Optional[Adjust] = None) -> CfgNode:
    """Parse `--cfg FILE` and trailing `KEY VAL` pairs into a frozen, validated config; `adjust(cfg, given)`
    runs before the validation (default `adopt_initial`: the `initial` checkpoint's model keys and size)."""
    parser = argparse.ArgumentParser(description=description, epilog=_epilog(examples, keys),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="", help="YAML config file (keys: libs/config/defaults.py)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VAL pairs overriding the config")
    args = parser.parse_args(argv)
    return load_cfg(args.cfg or None, args.opts, adjust=adjust or adopt_initial)


def _epilog(examples: str, keys: Sequence[Tuple[str, str]]) -> str:
    """Usage examples, the most used keys and where every key is described."""
    parts = [f"examples:\n{examples.rstrip()}"] if examples else []
    if keys:
        width = max(len(k) for k, _ in keys)
        parts.append("most used keys (KEY VAL after the options, or `key: value` in the --cfg file):\n"
                     + "\n".join(f"  {k.ljust(width)}  {text}" for k, text in keys))
    parts.append(KEYS_HELP)
    return "\n\n".join(parts)


def adopt_initial(cfg: CfgNode, given: Set[str]) -> None:
    """test.py, the demo, the app and the API: take arch / keydim / valdim from the `initial` checkpoint's
    stored config, and its training input_size when neither the config file nor the options set one."""
    if cfg.initial:
        keys = MODEL_KEYS + (() if "input_size" in given else ("input_size",))
        adopt_checkpoint_config(cfg, read_checkpoint(cfg.initial), cfg.initial, keys)


def adopt_checkpoint_config(cfg: CfgNode, data: Dict[str, Any], path: str, keys: Sequence[str] = MODEL_KEYS,
                            quiet: bool = False) -> None:
    """Set `keys` to the values checkpoint `data` (read from `path`) stores in its config (train.py stores
    it), saying so in one line (unless `quiet`) when they differ from the run's config."""
    stored = {k: _like(cfg[k], v) for k, v in stored_model_config(data, keys).items()}
    differ = {k: v for k, v in stored.items() if cfg[k] != v}
    if differ and not quiet:
        theirs = ", ".join(f"{k} {_show(v)}" for k, v in differ.items())
        ours = ", ".join(f"{k} {_show(cfg[k])}" for k in differ)
        _ensure_logging()
        log.info("%s was trained with %s: using %s (the config says %s)", path, theirs,
                 "those" if len(differ) > 1 else "it", ours)
    for key, value in differ.items():
        cfg[key] = value


def _like(current: Any, stored: Any) -> Any:
    """A stored value in the type of the run's value (YAML gives lists where the config holds tuples)."""
    return type(current)(stored) if isinstance(current, (list, tuple)) and isinstance(stored, (list, tuple)) else stored


def _show(value: Any) -> str:
    """[48, 84] for tuples and lists, else the value."""
    return str(list(value)) if isinstance(value, (list, tuple)) else str(value)


def _ensure_logging() -> None:
    """Send log lines to stderr if the script has not set up logging yet (it may redo it later); not on
    torchrun's ranks other than 0, which train.py leaves without log output."""
    if not logging.getLogger().handlers and os.environ.get("RANK", "0") == "0":
        from ..utils.logging import setup_logging
        setup_logging()


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
