"""A session's files, so that nothing is lost when the server stops: `<root>/<session>/session.json` names
the open video; `v<N>/frames/` is its frame cache, `v<N>/given/<t>.png` the masks painted and
`v<N>/results/<t>.png` the propagated ones (indexed PNGs, each written atomically as it comes)."""
import json
import logging
import os
import queue
import re
import shutil
import threading
from typing import Dict, Optional, Tuple

import numpy as np

from libs.io import atomic_path, read_mask, write_indexed_png

log = logging.getLogger("app")
META = "session.json"
KINDS = ("given", "results")
Masks = Dict[int, np.ndarray]


class SessionFiles:
    """The files of one session folder."""

    def __init__(self, folder: str):
        self.folder = folder

    def meta(self) -> Optional[dict]:
        """The saved {"version", "name"} of the open video, or None when the session never opened one."""
        try:
            with open(os.path.join(self.folder, META)) as f:
                meta = json.load(f)
            return meta if isinstance(meta, dict) and isinstance(meta.get("version"), int) else None
        except (OSError, ValueError):
            return None

    def version_dir(self, version: int, *names: str) -> str:
        """`v<version>/...` inside the session folder."""
        return os.path.join(self.folder, f"v{version}", *names)

    def prepare(self, version: int) -> str:
        """Fresh folders for video `version`; returns its frame-cache folder."""
        shutil.rmtree(self.version_dir(version), ignore_errors=True)
        for kind in KINDS:
            os.makedirs(self.version_dir(version, kind))
        return self.version_dir(version, "frames")

    def commit(self, version: int, name: str) -> None:
        """Make `version` the session's video (atomically) and remove the files of earlier ones (a later one
        may be on its way in: another upload of the same page)."""
        with atomic_path(os.path.join(self.folder, META)) as tmp, open(tmp, "w") as f:
            json.dump({"version": version, "name": name}, f)
        for entry in os.listdir(self.folder):
            if re.fullmatch(r"v\d+", entry) and int(entry[1:]) < version:
                shutil.rmtree(os.path.join(self.folder, entry), ignore_errors=True)

    def clean(self, keep: Optional[int]) -> None:
        """Remove every temporary file (uploads, unpacked zips, exports) and every video folder but `keep`."""
        if not os.path.isdir(self.folder):
            return
        for entry in os.listdir(self.folder):
            if entry == META or entry == f"v{keep}":
                continue
            path = os.path.join(self.folder, entry)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)

    def save(self, version: int, kind: str, t: int, labels: Optional[np.ndarray], palette) -> None:
        """Write (or, for None, remove) frame t's mask of `kind`; nothing when that video is gone."""
        folder = self.version_dir(version, kind)
        if not os.path.isdir(folder):
            return
        path = os.path.join(folder, f"{t:06d}.png")
        if labels is None:
            if os.path.exists(path):
                os.remove(path)
            return
        write_indexed_png(path, labels, palette)

    def load(self, version: int) -> Tuple[Masks, Masks]:
        """(given, results) masks saved for video `version`."""
        out = []
        for kind in KINDS:
            folder, masks = self.version_dir(version, kind), {}
            for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                if re.fullmatch(r"\d{6}\.png", entry):
                    masks[int(entry[:6])] = read_mask(os.path.join(folder, entry))[0]
            out.append(masks)
        return out[0], out[1]


class MaskWriter:
    """One background thread writing propagated masks as they come, so the propagation never waits on disk."""

    def __init__(self):
        self.queue: "queue.Queue" = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="app-mask-writer")
        self.thread.start()

    def put(self, files: SessionFiles, version: int, t: int, labels: np.ndarray, palette) -> None:
        """Queue frame t's propagated mask."""
        self.queue.put((files, version, t, labels, palette))

    def flush(self) -> None:
        """Wait until every queued mask is written."""
        self.queue.join()

    def _loop(self) -> None:
        """Write queued masks forever; a failure is logged and the next one written."""
        while True:
            files, version, t, labels, palette = self.queue.get()
            try:
                files.save(version, "results", t, labels, palette)
            except Exception:
                log.exception("could not save the mask of frame %d in %s", t, files.folder)
            finally:
                self.queue.task_done()
