"""The browser app's HTTP side (Starlette): one page, its static files, and a small JSON/bytes API per
session. Every error becomes one message for the page (JSON `error`) and one log line; the server keeps
serving."""
import functools
import logging
import os
from typing import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from libs.app.media import Refused, TooLarge, Unknown, allowed_path, jpeg, labels_from_bytes, save_upload, too_large
from libs.app.sessions import SessionStore
from libs.errors import VOSError
from libs.io import davis_palette

log = logging.getLogger("app")
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATUS = ((Refused, 403), (TooLarge, 413), (Unknown, 404), (VOSError, 400))
Handler = Callable[[Request], Awaitable[Response]]


def handled(fn: Handler) -> Handler:
    """Turn a VOSError into a JSON `error` with its HTTP status and a log line; anything else into a 500
    whose details go to the log only."""
    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except VOSError as err:
            status = next(code for kind, code in STATUS if isinstance(err, kind))
            log.warning("session %s: %s", request.path_params.get("sid", "-"), err)
            return JSONResponse({"error": str(err)}, status_code=status)
        except Exception:
            log.exception("request %s %s failed", request.method, request.url.path)
            return JSONResponse({"error": "the server failed on this request; its log has the details"},
                                status_code=500)
    return wrapper


class AppRoutes:
    """The handlers, bound to one SessionStore and the app's limits."""

    def __init__(self, store: SessionStore, max_upload_mb: int, allowed_dir: str):
        self.store, self.max_upload_mb, self.allowed_dir = store, max_upload_mb, allowed_dir

    def routes(self) -> list:
        """The URL table."""
        api = [("/session", self.new_session, "POST"), ("/{sid}/upload", self.upload, "POST"),
               ("/{sid}/open", self.open_path, "POST"), ("/{sid}/status", self.status, "GET"),
               ("/{sid}/frame/{t:int}", self.frame, "GET"), ("/{sid}/mask/{t:int}", self.get_mask, "GET"),
               ("/{sid}/mask/{t:int}", self.put_mask, "PUT"), ("/{sid}/propagate", self.propagate, "POST"),
               ("/{sid}/stop", self.stop, "POST"), ("/{sid}/masks.zip", self.masks_zip, "GET"),
               ("/{sid}/overlay.mp4", self.overlay_mp4, "GET")]
        return ([Route("/", self.page), Route("/api/config", self.config)]
                + [Route("/api" + path, handled(fn), methods=[method]) for path, fn, method in api]
                + [Mount("/static", StaticFiles(directory=STATIC), name="static")])

    async def page(self, request: Request) -> Response:
        """The single page."""
        return FileResponse(os.path.join(STATIC, "index.html"))

    async def config(self, request: Request) -> Response:
        """Limits the page checks before sending anything."""
        return JSONResponse({"max_upload_mb": self.max_upload_mb, "server_paths": bool(self.allowed_dir),
                             "palette": davis_palette()})

    async def new_session(self, request: Request) -> Response:
        """A session for a new browser tab."""
        return JSONResponse({"id": self.store.create().sid})

    async def upload(self, request: Request) -> Response:
        """The request body is the file (video or zip of frames); `?name=` its file name, `?size=` its size
        (the page sends no body when that is over the limit)."""
        session = self.store.get(request.path_params["sid"])
        name = os.path.basename(request.query_params.get("name", ""))
        for size in (request.query_params.get("size", ""), request.headers.get("content-length", "")):
            if size.isdigit() and int(size) > self.max_upload_mb * 1024 * 1024:
                raise too_large(name, self.max_upload_mb)
        path = await save_upload(request.stream(), name, session.folder, self.max_upload_mb)
        try:
            await run_in_threadpool(self.store.open_video, session, path, name)
        finally:
            os.remove(path)          # a video's frames are decoded in memory, a zip's frames unpacked
        return JSONResponse(session.status())

    async def open_path(self, request: Request) -> Response:
        """Open a video file or folder of frames on the server, inside `allowed_dir`."""
        session = self.store.get(request.path_params["sid"])
        given = str((await _json(request)).get("path", ""))
        path = allowed_path(given, self.allowed_dir)
        await run_in_threadpool(self.store.open_video, session, path, os.path.basename(os.path.normpath(given)))
        return JSONResponse(session.status())

    async def status(self, request: Request) -> Response:
        """Progress and per-frame marks."""
        return JSONResponse(self.store.get(request.path_params["sid"]).status())

    async def frame(self, request: Request) -> Response:
        """Frame t as JPEG."""
        video = self.store.get(request.path_params["sid"]).require_video()
        t = video_index(video, request.path_params["t"])
        data = await run_in_threadpool(jpeg, video.frames[t])
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def get_mask(self, request: Request) -> Response:
        """Frame t's labels as H*W raw bytes; 204 when it has none."""
        video = self.store.get(request.path_params["sid"]).require_video()
        labels = video.mask(video_index(video, request.path_params["t"]))
        if labels is None:
            return Response(status_code=204)
        return Response(labels.tobytes(), media_type="application/octet-stream", headers={"Cache-Control": "no-store"})

    async def put_mask(self, request: Request) -> Response:
        """Give frame t's complete mask (H*W raw label bytes)."""
        session = self.store.get(request.path_params["sid"])
        video = session.require_idle()
        t = video_index(video, request.path_params["t"])
        video.add_mask(t, labels_from_bytes(await request.body(), video.size, t))
        return JSONResponse(session.status())

    async def propagate(self, request: Request) -> Response:
        """Propagate from `start` to the last frame, in the background."""
        session = self.store.get(request.path_params["sid"])
        start = (await _json(request)).get("start")
        if not isinstance(start, int):
            raise VOSError(f"propagate needs a frame number `start`; got {start!r}")
        self.store.propagate(session, start)
        return JSONResponse(session.status())

    async def stop(self, request: Request) -> Response:
        """Stop the session's propagation after the current frame."""
        session = self.store.get(request.path_params["sid"])
        session.require_video().stop()
        return JSONResponse(session.status())

    async def masks_zip(self, request: Request) -> Response:
        """The indexed PNGs as a zip."""
        session = self.store.get(request.path_params["sid"])
        path = await run_in_threadpool(self.store.export_zip, session)
        return FileResponse(path, media_type="application/zip", filename=f"{_stem(session.name)}_masks.zip")

    async def overlay_mp4(self, request: Request) -> Response:
        """The overlay video."""
        session = self.store.get(request.path_params["sid"])
        path = await run_in_threadpool(self.store.export_video, session)
        return FileResponse(path, media_type="video/mp4", filename=f"{_stem(session.name)}_overlay.mp4")


def video_index(video, t: int) -> int:
    """`t` when the video has that frame, else an Unknown error."""
    if not 0 <= t < len(video):
        raise Unknown(f"frame {t} does not exist: the video has frames 0..{len(video) - 1}")
    return t


async def _json(request: Request) -> dict:
    """The request's JSON object body, or a VOSError."""
    try:
        data = await request.json()
    except ValueError:
        raise VOSError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise VOSError("the request body must be a JSON object")
    return data


def _stem(name: str) -> str:
    """A download name from the video's name ('clip.mp4' -> 'clip')."""
    stem = os.path.splitext(os.path.basename(name))[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "video"


def build_app(store: SessionStore, max_upload_mb: int, allowed_dir: str) -> Starlette:
    """The Starlette application (its sessions in `app.state.store`)."""
    app = Starlette(routes=AppRoutes(store, max_upload_mb, allowed_dir).routes())
    app.state.store = store
    return app
