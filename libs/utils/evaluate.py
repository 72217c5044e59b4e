"""What test.py does after writing masks: J&F where ground truth exists, a zip for YouTube-VOS."""
import logging

log = logging.getLogger(__name__)


def after_test(dataset, out_root: str, fmt: str) -> None:
    """Evaluate DAVIS-style sets with full ground truth; pack YouTube-VOS results for the server."""
    if fmt != "index":
        log.info("save_indexed_format %s: overlays are not evaluated", fmt)
        return
