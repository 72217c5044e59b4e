"""The browser app's sessions: one per browser tab, each with its own folder, video and propagation job.
A session's video and masks live in its folder (libs/app/files.py): a session dropped from memory (idle,
or the server restarted) comes back when its page asks for it."""
import logging
import os
import re
import shutil
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from ..api import VideoSession
from .files import MaskFolder, SessionFiles
from .frames import FrameCache, build_cache
from .media import Busy, Unknown, unzip_frames
from ..errors import VOSError
from ..inference.scheduler import SharedScheduler
from ..io import atomic_path, davis_palette, safe_join

log = logging.getLogger("app")
SID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Limits:
    """What one server holds: upload size, video length and frame size, sessions in memory and their idle time."""

    max_upload_mb: int = 500
    max_frames: int = 10000
    max_pixels: int = 3840 * 2160
    max_sessions: int = 8
    idle_s: float = 3600.0


class AppSession:
    """One browser tab: its folder under the app's root, its video (a VideoSession) and its job."""

    def __init__(self, sid: str, folder: str):
        self.sid, self.folder, self.files = sid, folder, SessionFiles(folder)
        self.video: Optional[VideoSession] = None
        self.results: Optional[MaskFolder] = None   # the video's results, kept on disk
        self.name = ""
        self.version = 0                        # the open video's number in this session (frame URLs carry it)
        self.allocated = 0                      # the highest video number handed out (uploads may overlap)
        self.error = ""                         # why the last request failed ('' when it did not)
        self.stopped = False                    # the last propagation was stopped by the user
        self.run: Tuple[int, bool] = (0, False)     # (start frame, reverse) of the last propagation
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
            return {"open": False, "error": self.error, "id": self.sid}
        video = self.video
        marks = ["."] * len(video)
        for t in video.mask_frames():
            marks[t] = "p"
        for t in video.given_frames():
            marks[t] = "g"
        done, total = video.progress
        start, reverse = self.run
        last = start + (1 - done if reverse else done - 1) if done else None
        return {"open": True, "id": self.sid, "name": self.name, "version": self.version, "frames": len(video),
                "height": video.size[0], "width": video.size[1], "running": video.running, "done": done,
                "total": total, "start": start, "reverse": reverse, "last": last, "stopped": self.stopped,
                "error": self.error or video.error, "marks": "".join(marks)}


class SessionStore:
    """Creates, finds and restores sessions; opens videos whose propagations all go through one shared
    scheduler (tabs propagating at once are segmented together, in one batch, on one network)."""

    def __init__(self, root: str, scheduler: SharedScheduler, input_size: Tuple[int, int], limits: Limits = Limits()):
        self.root, self.scheduler, self.input_size, self.limits = root, scheduler, input_size, limits
        self.sessions: Dict[str, AppSession] = {}
        self.lock = threading.Lock()            # guards `sessions`

    def create(self) -> AppSession:
        """A new session with its own folder."""
        with self.lock:
            self._make_room()
            sid = uuid.uuid4().hex[:16]
            session = AppSession(sid, safe_join(self.root, sid))
            os.makedirs(session.folder, exist_ok=True)
            self.sessions[sid] = session
        log.info("session %s started (folder %s)", sid, session.folder)
        return session

    def get(self, sid: str) -> AppSession:
        """The session `sid` (restored from its folder when not in memory), or an Unknown error."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None:
                session = self._restore(sid)
            session.last_seen = time.monotonic()
            return session

    def _restore(self, sid: str) -> AppSession:
        """Bring back a session from its folder: its video (frame cache) and its saved masks."""
        meta = SessionFiles(os.path.join(self.root, sid)).meta() if SID.fullmatch(sid) else None
        if meta is None:
            raise Unknown("this page's session is unknown to the server (its folder holds no video); "
                          "reload the page without ?session= to start a new one")
        self._make_room()
        session = AppSession(sid, safe_join(self.root, sid))
        version = meta["version"]
        results = session.files.results(version, davis_palette())
        video = self._video(FrameCache(session.files.version_dir(version, "frames")), meta["name"], results)
        video.restore(session.files.given(version))
        session.files.clean(keep=version)          # what a killed server left: uploads, unfinished videos
        session.video, session.results, session.name, session.version = video, results, meta["name"], version
        self.sessions[sid] = session
        log.info("session %s restored from %s (%s, %d masks)", sid, session.folder, meta["name"],
                 len(video.mask_frames()))
        return session

    def _make_room(self) -> None:
        """Drop idle sessions, then the least recently used ones, until a new one fits (caller holds lock)."""
        self._forget(self.limits.idle_s)
        while len(self.sessions) >= self.limits.max_sessions:
            idle = [s for s in self.sessions.values() if not _running(s)]
            if not idle:
                raise Busy(f"the server holds {len(self.sessions)} sessions, all propagating (max_sessions "
                           f"{self.limits.max_sessions}); wait for one to finish, or raise max_sessions")
            self._drop(min(idle, key=lambda s: s.last_seen), "to make room for another")

    def forget_idle(self) -> None:
        """Drop the sessions no page asked about for `idle_s` seconds (the idle timer calls this)."""
        with self.lock:
            self._forget(self.limits.idle_s)

    def _forget(self, idle_s: float) -> None:
        """Drop the sessions idle for `idle_s` seconds that run nothing (caller holds the lock)."""
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if now - session.last_seen > idle_s and not _running(session):
                self._drop(session, f"idle for {now - session.last_seen:.0f} s")

    def _drop(self, session: AppSession, why: str) -> None:
        """Forget a session: its memory goes, its temporary files too; its video and masks stay on disk."""
        del self.sessions[session.sid]
        if session.video is None:
            shutil.rmtree(session.folder, ignore_errors=True)
        else:
            session.files.clean(keep=session.version)
        log.info("session %s dropped from memory (%s); its files stay in %s", session.sid, why, session.folder)

    def _video(self, frames: FrameCache, name: str, results: MaskFolder) -> VideoSession:
        """A VideoSession on cached frames, its results kept in `results` (on disk), propagating through the
        shared scheduler."""
        core = self.scheduler.scheduler.core
        return VideoSession(frames, frames.names, frames.fps, core.backend, core.settings, self.input_size,
                            title=name, results=results, scheduler=self.scheduler)

    def open_video(self, session: AppSession, path: str, name: str) -> None:
        """Decode the video (file, folder or zip of frames) at `path` into the session's frame cache; the
        session's previous video stays when this one fails."""
        with session.lock:
            session.allocated = version = max(session.allocated, session.version) + 1
        cache = session.files.prepare(version)
        results = session.files.results(version, davis_palette())
        unpacked = session.files.version_dir(version, "unzipped")
        try:
            source = unzip_frames(path, unpacked, self.limits.max_upload_mb) if path.lower().endswith(".zip") else path
            video = self._video(build_cache(source, cache, name, self.limits.max_frames, self.limits.max_pixels),
                                name, results)
        except VOSError as err:        # name the user's file, not the server's copy of it
            shutil.rmtree(session.files.version_dir(version), ignore_errors=True)
            raise type(err)(str(err).replace(unpacked, name).replace(path, name)) from None
        except BaseException:
            shutil.rmtree(session.files.version_dir(version), ignore_errors=True)
            raise
        shutil.rmtree(unpacked, ignore_errors=True)
        with session.lock:
            if session.video is not None and session.video.running:
                shutil.rmtree(session.files.version_dir(version), ignore_errors=True)
                raise VOSError("a propagation is running; press Stop before opening another video")
            if version < session.version:             # a later upload of this page got in first
                shutil.rmtree(session.files.version_dir(version), ignore_errors=True)
                raise VOSError(f"{name} was overtaken by another video opened in this page meanwhile")
            session.video, session.results, session.name, session.error = video, results, name, ""
            session.version = version
            session.stopped, session.run = False, (0, False)
            session.files.commit(version, name)
        log.info("session %s: opened %s (%d frames, %dx%d)", session.sid, name, len(video), video.size[1],
                 video.size[0])

    def put_mask(self, session: AppSession, t: int, labels: np.ndarray) -> None:
        """Give frame t's mask (saved with the results by the video's MaskFolder, and as a painted one)."""
        with session.lock:
            video = session.require_idle()
            video.add_mask(t, labels)
            session.files.save_given(session.version, t, labels, video.palette)

    def delete_object(self, session: AppSession, obj: int) -> int:
        """Remove object `obj` from every mask, one frame at a time (saved too); returns how many it was on."""
        with session.lock:
            video = session.require_idle()
            given, touched = video.given_frames(), 0
            for t in video.mask_frames():
                labels = video.mask(t)
                if np.any(labels == obj):
                    labels[labels == obj] = 0
                    session.results[t] = labels           # the session is idle: its video reads them later
                    touched += 1
            kept = {t: m for t, m in ((t, video.mask(t)) for t in given) if np.any((m > 0) & (m < 255))}
            video.restore(kept)
            for t in given:
                session.files.save_given(session.version, t, kept.get(t), video.palette)
        return touched

    def propagate(self, session: AppSession, start: int, reverse: bool = False) -> None:
        """Start propagating from frame `start` to the last frame (or frame 0) in the shared scheduler."""
        with session.lock:
            video = session.require_idle()
            if not 0 <= start < len(video) or video.mask(start) is None:
                raise VOSError(f"frame {start} has no mask yet: paint at least one object on it, then propagate")
            video.submit(start=start, reverse=reverse)          # checks now: errors reach the page
            session.error, session.stopped, session.run = "", False, (start, reverse)

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


def _running(session: AppSession) -> bool:
    """Whether the session's video is propagating."""
    return session.video is not None and session.video.running
