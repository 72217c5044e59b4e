"""The browser app's HTTP side (Starlette): one page, its static files, and a small JSON/bytes API per
session. Every error becomes one message for the page (JSON `error`) and one log line; the server keeps
serving."""
import asyncio
import contextlib
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

from .coco import write_coco
from .grabcut import grabcut
from .media import Busy, Refused, TooLarge, Unknown, allowed_path, labels_from_bytes, save_upload, too_large
from .sessions import AppSession, SessionStore
from ..errors import VOSError
from ..io import davis_palette

log = logging.getLogger("app")
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATUS = ((Refused, 403), (TooLarge, 413), (Unknown, 404), (Busy, 503), (VOSError, 400))
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

    def __init__(self, store: SessionStore, allowed_dir: str):
        self.store, self.allowed_dir = store, allowed_dir
        self.max_upload_mb = store.limits.max_upload_mb

    def routes(self) -> list:
        """The URL table."""
        api = [("/session", self.new_session, "POST"), ("/{sid}/upload", self.upload, "POST"),
               ("/{sid}/open", self.open_path, "POST"), ("/{sid}/status", self.status, "GET"),
               ("/{sid}/v{version:int}/frame/{t:int}", self.frame, "GET"),
               ("/{sid}/mask/{t:int}", self.get_mask, "GET"), ("/{sid}/mask/{t:int}", self.put_mask, "PUT"),
               ("/{sid}/object/{obj:int}", self.delete_object, "DELETE"), ("/{sid}/grabcut", self.grabcut, "POST"),
               ("/{sid}/propagate", self.propagate, "POST"), ("/{sid}/stop", self.stop, "POST"),
               ("/{sid}/masks.zip", self.masks_zip, "GET"), ("/{sid}/overlay.mp4", self.overlay_mp4, "GET"),
               ("/{sid}/coco.json", self.coco_json, "GET")]
        return ([Route("/", self.page), Route("/api/config", self.config)]
                + [Route("/api" + path, handled(fn), methods=[method]) for path, fn, method in api]
                + [Mount("/static", StaticFiles(directory=STATIC), name="static")])

    async def session(self, request: Request) -> AppSession:
        """The request's session (restoring it from its folder can take a moment: off the event loop)."""
        return await run_in_threadpool(self.store.get, request.path_params["sid"])

    async def page(self, request: Request) -> Response:
        """The single page."""
        return FileResponse(os.path.join(STATIC, "index.html"))

    async def config(self, request: Request) -> Response:
        """Limits the page checks before sending anything."""
        return JSONResponse({"max_upload_mb": self.max_upload_mb, "server_paths": bool(self.allowed_dir),
                             "palette": davis_palette()})

    async def new_session(self, request: Request) -> Response:
        """A session for a new browser tab."""
        return JSONResponse({"id": (await run_in_threadpool(self.store.create)).sid})

    async def upload(self, request: Request) -> Response:
        """The request body is the file (video or zip of frames); `?name=` its file name, `?size=` its size
        (the page sends no body when that is over the limit)."""
        session = await self.session(request)
        name = os.path.basename(request.query_params.get("name", ""))
        for size in (request.query_params.get("size", ""), request.headers.get("content-length", "")):
            if size.isdigit() and int(size) > self.max_upload_mb * 1024 * 1024:
                raise too_large(name, self.max_upload_mb)
        path = await save_upload(request.stream(), name, session.folder, self.max_upload_mb)
        try:
            await run_in_threadpool(self.store.open_video, session, path, name)
        finally:
            with contextlib.suppress(FileNotFoundError):      # its frames are in the frame cache now
                os.remove(path)
        return JSONResponse(session.status())

    async def open_path(self, request: Request) -> Response:
        """Open a video file or folder of frames on the server, inside `allowed_dir`."""
        session = await self.session(request)
        given = str((await _json(request)).get("path", ""))
        path = allowed_path(given, self.allowed_dir)
        await run_in_threadpool(self.store.open_video, session, path, os.path.basename(os.path.normpath(given)))
        return JSONResponse(session.status())

    async def status(self, request: Request) -> Response:
        """Progress and per-frame marks."""
        return JSONResponse((await self.session(request)).status())

    async def frame(self, request: Request) -> Response:
        """Frame t of the session's video number `version` as JPEG (cached: the address names the video)."""
        session = await self.session(request)
        video = session.require_video()
        if request.path_params["version"] != session.version:
            raise Unknown("this frame belongs to a video this session no longer has open; reload the page")
        data = await run_in_threadpool(video.frames.jpeg, video_index(video, request.path_params["t"]))
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def get_mask(self, request: Request) -> Response:
        """Frame t's labels as H*W raw bytes; 204 when it has none."""
        video = (await self.session(request)).require_video()
        labels = video.mask(video_index(video, request.path_params["t"]))
        if labels is None:
            return Response(status_code=204)
        return Response(labels.tobytes(), media_type="application/octet-stream", headers={"Cache-Control": "no-store"})

    async def put_mask(self, request: Request) -> Response:
        """Give frame t's complete mask (H*W raw label bytes)."""
        session = await self.session(request)
        video = session.require_idle()
        t = video_index(video, request.path_params["t"])
        body = await read_body(request, video.size[0] * video.size[1], f"the mask sent for frame {t}")
        await run_in_threadpool(self.store.put_mask, session, t, labels_from_bytes(body, video.size, t))
        return JSONResponse(session.status())

    async def delete_object(self, request: Request) -> Response:
        """Remove one object from every frame's mask."""
        session = await self.session(request)
        obj = request.path_params["obj"]
        if not 0 < obj < 255:
            raise VOSError(f"object {obj} does not exist; objects are numbered 1..254")
        frames = await run_in_threadpool(self.store.delete_object, session, obj)
        return JSONResponse(dict(session.status(), deleted=frames))

    async def grabcut(self, request: Request) -> Response:
        """{t, box, fg, bg, radius} -> the object's mask on frame t (H*W bytes, 1 inside) from GrabCut."""
        video = (await self.session(request)).require_video()
        data = await _json(request)
        t = data.get("t")
        if not isinstance(t, int):
            raise VOSError(f"grabcut needs a frame number `t`; got {t!r}")
        frame = video.frames[video_index(video, t)]
        radius = data.get("radius", 4)
        mask = await run_in_threadpool(grabcut, frame, data.get("box"), data.get("fg"), data.get("bg"),
                                       float(radius) if isinstance(radius, (int, float)) else 4.0)
        return Response(mask.astype("uint8").tobytes(), media_type="application/octet-stream")

    async def propagate(self, request: Request) -> Response:
        """Propagate from `start` to the last frame (`reverse`: to frame 0), in the background."""
        session = await self.session(request)
        data = await _json(request)
        start, reverse = data.get("start"), data.get("reverse", False)
        if not isinstance(start, int) or not isinstance(reverse, bool):
            raise VOSError(f"propagate needs a frame number `start` (and `reverse` true/false); got {data!r}")
        self.store.propagate(session, start, reverse)
        return JSONResponse(session.status())

    async def stop(self, request: Request) -> Response:
        """Stop the session's propagation after the current frame."""
        session = await self.session(request)
        video = session.require_video()
        if video.running:
            session.stopped = True
            video.stop()
        return JSONResponse(session.status())

    async def masks_zip(self, request: Request) -> Response:
        """The indexed PNGs as a zip."""
        session = await self.session(request)
        path = await run_in_threadpool(self.store.export_zip, session)
        return FileResponse(path, media_type="application/zip", filename=f"{_stem(session.name)}_masks.zip")

    async def overlay_mp4(self, request: Request) -> Response:
        """The overlay video."""
        session = await self.session(request)
        path = await run_in_threadpool(self.store.export_video, session)
        return FileResponse(path, media_type="video/mp4", filename=f"{_stem(session.name)}_overlay.mp4")

    async def coco_json(self, request: Request) -> Response:
        """The masks as COCO JSON (RLE masks, one track id per object)."""
        session = await self.session(request)
        video = session.require_idle()
        masks = video.masks()
        if not masks:
            raise VOSError("nothing to export: no frame has a mask yet")
        path = await run_in_threadpool(write_coco, os.path.join(session.folder, "export", "coco.json"), masks,
                                       video.names, video.size, session.name)
        return FileResponse(path, media_type="application/json", filename=f"{_stem(session.name)}_coco.json")


def video_index(video, t: int) -> int:
    """`t` when the video has that frame, else an Unknown error."""
    if not 0 <= t < len(video):
        raise Unknown(f"frame {t} does not exist: the video has frames 0..{len(video) - 1}")
    return t


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, or TooLarge as soon as it passes `limit` bytes."""
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > limit:
        raise TooLarge(f"{what} has {size} bytes; the frame has only {limit} pixels")
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise TooLarge(f"{what} has more than {limit} bytes; the frame has only {limit} pixels")
        chunks.append(chunk)
    return b"".join(chunks)


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


def build_app(store: SessionStore, allowed_dir: str) -> Starlette:
    """The Starlette application (its sessions in `app.state.store`), with the idle timer running."""
    app = Starlette(routes=AppRoutes(store, allowed_dir).routes(), lifespan=functools.partial(_idle_timer, store))
    app.state.store = store
    return app


@contextlib.asynccontextmanager
async def _idle_timer(store: SessionStore, app: Starlette):
    """Drop idle sessions every few seconds while the app runs."""
    async def tick():
        while True:
            await asyncio.sleep(min(60.0, max(1.0, store.limits.idle_s / 4)))
            await run_in_threadpool(store.forget_idle)
    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
