"""What every command-line script shares: `--cfg FILE KEY VAL ...` parsing, the model keys a checkpoint
carries, and one-line errors."""
import argparse
import logging
import os
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from yacs.config import CfgNode

from libs.config import load_cfg
from libs.training.checkpointer import Checkpointer
from libs.errors import VOSError
from libs.models.checkpoint import read_checkpoint, stored_model_config

log = logging.getLogger("config")
KEYS_HELP = "Every key, with its default and what it does: libs/config/defaults.py"


def parse_cfg(description: str, argv: Optional[List[str]] = None, examples: str = "",
              keys: Sequence[Tuple[str, str]] = (), training: bool = False) -> CfgNode:
    """Parse `--cfg FILE` and trailing `KEY VAL` pairs into a frozen, validated config whose model keys
    (arch, keydim, valdim) follow the checkpoint to load (`resume`, else `initial` when `training`)."""
    parser = argparse.ArgumentParser(description=description, epilog=_epilog(examples, keys),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", default="", help="YAML config file (keys: libs/config/defaults.py)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VAL pairs overriding the config")
    args = parser.parse_args(argv)
    return load_cfg(args.cfg or None, args.opts, adjust=lambda cfg: adopt_checkpoint_model(cfg, training))


def _epilog(examples: str, keys: Sequence[Tuple[str, str]]) -> str:
    """Usage examples, the most used keys and where every key is described."""
    parts = [f"examples:\n{examples.rstrip()}"] if examples else []
    if keys:
        width = max(len(k) for k, _ in keys)
        parts.append("most used keys (KEY VAL after the options, or `key: value` in the --cfg file):\n"
                     + "\n".join(f"  {k.ljust(width)}  {text}" for k, text in keys))
    parts.append(KEYS_HELP)
    return "\n\n".join(parts)


def weights_to_load(cfg: CfgNode, training: bool) -> str:
    """The checkpoint whose weights the run loads: `resume` (auto: <checkpoint>/latest.pth) when training
    and set, else `initial`; '' when none."""
    if training and cfg.resume:
        if cfg.resume == "auto":      # the file the trainer will load: latest.pth, else the newest epoch
            return Checkpointer(cfg.checkpoint).latest()
        return cfg.resume
    return cfg.initial


def adopt_checkpoint_model(cfg: CfgNode, training: bool = False) -> None:
    """Set arch / keydim / valdim to those stored in the checkpoint to load (train.py stores its config),
    saying so in one line when they differ from the run's config."""
    path = weights_to_load(cfg, training)
    if not path:
        return
    stored = stored_model_config(read_checkpoint(path))
    differ = {k: v for k, v in stored.items() if cfg[k] != v}
    if not differ:
        return
    theirs = ", ".join(f"{k} {v}" for k, v in differ.items())
    ours = ", ".join(f"{k} {cfg[k]}" for k in differ)
    _ensure_logging()
    log.info("%s was trained with %s: using those (the config says %s)", path, theirs, ours)
    for key, value in differ.items():
        cfg[key] = value


def _ensure_logging() -> None:
    """Send log lines to stderr if the script has not set up logging yet (it may redo it later); not on
    torchrun's ranks other than 0, which train.py leaves without log output."""
    if not logging.getLogger().handlers and os.environ.get("RANK", "0") == "0":
        from libs.utils.logging import setup_logging
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
