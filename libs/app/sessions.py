"""The browser app's sessions: one per browser tab, each with its own folder, video and propagation job."""
import logging
import os
import shutil
import threading
import time
import uuid
import zipfile
from typing import Callable, Dict, Optional, Tuple

import torch

from libs.api import VideoSession, load_frames
from libs.app.media import Unknown, unzip_frames
from libs.engine import InferenceEngine
from libs.errors import VOSError
from libs.io import atomic_path, safe_join

log = logging.getLogger("app")
IDLE_FORGET_S = 3600.0        # a session no page asked about for this long is dropped from memory (files stay)


class AppSession:
    """One browser tab: its folder under the app's root, its video (a VideoSession) and its job."""

    def __init__(self, sid: str, folder: str):
        self.sid, self.folder = sid, folder
        self.video: Optional[VideoSession] = None
        self.name = ""
        self.error = ""                         # why the last propagation failed ('' when it did not)
        self.thread: Optional[threading.Thread] = None
        self.lock = threading.Lock()            # one request changes the session at a time
        self.last_seen = time.monotonic()

    def require_video(self) -> VideoSession:
        """The session's video, or a VOSError asking to open one."""
        if self.video is None:
            raise VOSError("no video is open; upload a video or a zip of frames first")
        return self.video

    def require_idle(self) -> VideoSession:
        """The video, when no propagation runs."""
        video = self.require_video()
        if video.running:
            raise VOSError("a propagation is running; press Stop or wait for it to finish")
        return video

    def status(self) -> dict:
        """What the page shows: the video, the progress, and per frame '.' (no mask), 'g' (given) or 'p'."""
        if self.video is None:
            return {"open": False, "error": self.error}
        video = self.video
        marks = ["."] * len(video)
        for t in video.mask_frames():
            marks[t] = "p"
        for t in video.given_frames():
            marks[t] = "g"
        done, total = video.progress
        return {"open": True, "name": self.name, "frames": len(video), "height": video.size[0],
                "width": video.size[1], "running": video.running, "done": done, "total": total,
                "error": self.error, "marks": "".join(marks)}


class SessionStore:
    """Creates and finds sessions; opens videos and runs propagations for them on one shared model."""

    def __init__(self, root: str, make_engine: Callable[[], InferenceEngine], input_size: Tuple[int, int],
                 device: torch.device, max_upload_mb: int):
        self.root, self.make_engine, self.input_size, self.device = root, make_engine, input_size, device
        self.max_upload_mb = max_upload_mb
        self.sessions: Dict[str, AppSession] = {}
        self.engine_lock = threading.Lock()     # frames of concurrent sessions take turns on the device

    def create(self) -> AppSession:
        """A new session with its own folder."""
        self.forget_idle()
        sid = uuid.uuid4().hex[:16]
        session = AppSession(sid, safe_join(self.root, sid))
        os.makedirs(session.folder, exist_ok=True)
        self.sessions[sid] = session
        log.info("session %s started (folder %s)", sid, session.folder)
        return session

    def get(self, sid: str) -> AppSession:
        """The session `sid`, or an Unknown error asking to reload the page."""
        session = self.sessions.get(sid)
        if session is None:
            raise Unknown("this page's session is unknown to the server (restarted, or idle for an hour); "
                          "reload the page")
        session.last_seen = time.monotonic()
        return session

    def forget_idle(self, idle_s: float = IDLE_FORGET_S) -> None:
        """Drop the sessions (their frames in memory) that no page asked about for `idle_s` seconds and that
        run nothing; their folders stay on disk."""
        now = time.monotonic()
        for sid, session in list(self.sessions.items()):
            if now - session.last_seen > idle_s and not (session.video is not None and session.video.running):
                del self.sessions[sid]
                log.info("session %s: idle for %.0f s, forgotten (its files stay in %s)", sid,
                         now - session.last_seen, session.folder)

    def open_video(self, session: AppSession, path: str, name: str) -> None:
        """Decode the video (file, folder or zip of frames) at `path`; the session's previous video stays
        when this one fails."""
        source, unpacked = path, os.path.join(session.folder, f"frames-{uuid.uuid4().hex[:8]}")
        try:
            if path.lower().endswith(".zip"):
                source = unzip_frames(path, unpacked, self.max_upload_mb)
            frames, names, fps = load_frames(source)
        except VOSError as err:        # name the user's file, not the server's copy of it
            shutil.rmtree(unpacked, ignore_errors=True)        # frames unpacked from a zip that failed
            raise type(err)(str(err).replace(source, name).replace(path, name)) from None
        video = VideoSession(frames, names, fps, self.make_engine(), self.input_size, self.device, title=name)
        with session.lock:
            if session.video is not None and session.video.running:
                raise VOSError("a propagation is running; press Stop before opening another video")
            session.video, session.name, session.error = video, name, ""
        log.info("session %s: opened %s (%d frames, %dx%d)", session.sid, name, len(frames),
                 video.size[1], video.size[0])

    def propagate(self, session: AppSession, start: int) -> None:
        """Start propagating from frame `start` to the last frame in a background thread."""
        with session.lock:
            video = session.require_idle()
            if not 0 <= start < len(video) or video.mask(start) is None:
                raise VOSError(f"frame {start} has no mask yet: paint at least one object on it, then propagate")
            frames = video.propagate(start=start)          # checks now: a VOSError reaches the page
            session.error = ""
            session.thread = threading.Thread(target=self._run, args=(session, frames), daemon=True,
                                              name=f"propagate-{session.sid[:6]}")
            session.thread.start()

    def _run(self, session: AppSession, frames) -> None:
        """The propagation job: one frame at a time under the engine lock; errors go to the page and log."""
        try:
            while True:
                with self.engine_lock:
                    if next(frames, None) is None:
                        break
        except VOSError as err:
            session.error = str(err)
            log.warning("session %s: %s", session.sid, err)
        except Exception:                                    # keep serving; the log has the details
            session.error = "the propagation failed; the server log has the details"
            log.exception("session %s: propagation failed", session.sid)
        finally:
            frames.close()

    def export_zip(self, session: AppSession) -> str:
        """The session's masks as indexed PNGs in `masks.zip` (written atomically); returns its path."""
        with session.lock:
            video = session.require_idle()
            folder = video.export(os.path.join(session.folder, "export"), overlay=False, video=False)
            path = os.path.join(session.folder, "masks.zip")
            with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
                for t in video.mask_frames():
                    archive.write(os.path.join(folder, video.names[t] + ".png"), video.names[t] + ".png")
        return path

    def export_video(self, session: AppSession) -> str:
        """The overlay mp4 of the session's video (every frame, masks drawn where there are some)."""
        with session.lock:
            video = session.require_idle()
            folder = video.export(os.path.join(session.folder, "export"), overlay=False, video=True)
        return os.path.join(folder, "overlay.mp4")
