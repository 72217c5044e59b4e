"""A session's files, so that nothing is lost when the server stops: `<root>/<session>/session.json` names
the open video; `v<N>/frames/` is its frame cache, `v<N>/given/<t>.png` the masks painted and
`v<N>/results/<t>.png` the propagated ones (indexed PNGs, each written atomically as it comes)."""
import json
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Dict, Iterator, Optional

import numpy as np

from ..io import atomic_path, read_mask, write_indexed_png

META = "session.json"
LRU_MASKS = 16          # masks of a video kept decoded in memory
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
        os.makedirs(self.version_dir(version, "given"))
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

    def save_given(self, version: int, t: int, labels: Optional[np.ndarray], palette) -> None:
        """Write (or, for None, remove) frame t's painted mask; nothing when that video is gone."""
        folder = self.version_dir(version, "given")
        if not os.path.isdir(folder):
            return
        path = os.path.join(folder, f"{t:06d}.png")
        if labels is None:
            if os.path.exists(path):
                os.remove(path)
            return
        write_indexed_png(path, labels, palette)

    def given(self, version: int) -> Masks:
        """The painted masks saved for video `version`."""
        folder, masks = self.version_dir(version, "given"), {}
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if re.fullmatch(r"\d{6}\.png", entry):
                masks[int(entry[:6])] = read_mask(os.path.join(folder, entry))[0]
        return masks

    def results(self, version: int, palette) -> "MaskFolder":
        """The results of video `version`, kept in its `results/` folder."""
        return MaskFolder(self.version_dir(version, "results"), palette)


class MaskFolder(MutableMapping):
    """Frame -> [H, W] uint8 labels kept as indexed PNGs in a folder (each written atomically when set), with
    a small in-memory LRU: a VideoSession's results that do not grow its memory with the video's length."""

    def __init__(self, folder: str, palette):
        self.folder, self.palette = folder, palette
        os.makedirs(folder, exist_ok=True)
        self._frames = {int(e[:6]) for e in os.listdir(folder) if re.fullmatch(r"\d{6}\.png", e)}
        self._lru: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()

    def _path(self, t: int) -> str:
        return os.path.join(self.folder, f"{t:06d}.png")

    def __setitem__(self, t: int, labels: np.ndarray) -> None:
        write_indexed_png(self._path(t), labels, self.palette)
        with self._lock:
            self._frames.add(t)
            self._remember(t, labels)

    def __getitem__(self, t: int) -> np.ndarray:
        with self._lock:
            if t not in self._frames:
                raise KeyError(t)
            if t in self._lru:
                self._lru.move_to_end(t)
                return self._lru[t]
        labels = read_mask(self._path(t))[0]                   # [H, W] uint8
        with self._lock:
            self._remember(t, labels)
        return labels

    def _remember(self, t: int, labels: np.ndarray) -> None:
        """Keep `labels` in the LRU (caller holds the lock)."""
        self._lru[t] = labels
        self._lru.move_to_end(t)
        while len(self._lru) > LRU_MASKS:
            self._lru.popitem(last=False)

    def __delitem__(self, t: int) -> None:
        with self._lock:
            self._frames.remove(t)
            self._lru.pop(t, None)
        os.remove(self._path(t))

    def __contains__(self, t) -> bool:
        return t in self._frames

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._frames))

    def __len__(self) -> int:
        return len(self._frames)

    def clear(self) -> None:
        """Remove every mask (without reading them back)."""
        for t in list(self._frames):
            del self[t]
