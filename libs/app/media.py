"""What the browser app receives and sends: uploads with a size limit, zips of frames, server paths inside
the allowed folder, frames as JPEG, labels as raw bytes."""
import os
import uuid
import zipfile
from typing import AsyncIterator

import numpy as np
from starlette.concurrency import run_in_threadpool

from ..errors import VOSError
from ..io.paths import IMAGE_EXTENSIONS, atomic_path, check_name
from ..io.video import VIDEO_EXTENSIONS

UPLOAD_EXTENSIONS = VIDEO_EXTENSIONS + (".zip",)
BLOCK = 1 << 20           # bytes of an upload written to disk at once
UNZIP_FACTOR = 4            # a zip may unpack to at most this many times the upload limit


class Refused(VOSError):
    """A request the server will not do (a path outside the allowed folder): HTTP 403."""


class TooLarge(VOSError):
    """An upload over `max_upload_mb`: HTTP 413."""


class Unknown(VOSError):
    """A session or frame that does not exist: HTTP 404."""


class Busy(VOSError):
    """Every session slot holds a running propagation: HTTP 503."""


def upload_kind(name: str) -> str:
    """The lower-case extension of an uploaded file's name, or a VOSError saying what to upload."""
    ext = os.path.splitext(name or "")[1].lower()
    if ext not in UPLOAD_EXTENSIONS:
        raise VOSError(f"{name or 'the upload'} is not a video or a zip of frames; upload "
                       f"{', '.join(e[1:] for e in UPLOAD_EXTENSIONS)}")
    return ext


async def save_upload(chunks: AsyncIterator[bytes], name: str, folder: str, limit_mb: int) -> str:
    """Stream an upload into `folder` under a fresh name, written off the event loop in blocks of about
    1 MB; a TooLarge error (file removed) past `limit_mb`."""
    ext = upload_kind(name)
    path = os.path.join(folder, f"upload-{uuid.uuid4().hex[:8]}{ext}")
    limit, size, block = limit_mb * 1024 * 1024, 0, []
    os.makedirs(folder, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(name, limit_mb)
            block.append(chunk)
            if sum(map(len, block)) >= BLOCK:
                await run_in_threadpool(out.write, b"".join(block))
                block = []
        await run_in_threadpool(out.write, b"".join(block))
    if size == 0:
        os.remove(path)
        raise VOSError(f"{name} is empty (0 bytes); upload a video or a zip of frames")
    return path


def too_large(name: str, limit_mb: int) -> TooLarge:
    """The error for an upload over the limit."""
    return TooLarge(f"{name} is larger than the upload limit of {limit_mb} MB; cut the video, or start the "
                    "app with a larger max_upload_mb")


def unzip_frames(path: str, folder: str, limit_mb: int) -> str:
    """Extract the images of the zip `path` into `folder` (flat; other files ignored); returns `folder`."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if _is_frame(m)]
            if not members:
                raise VOSError(f"{os.path.basename(path)}: the zip holds no frames "
                               f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)} files)")
            if sum(m.file_size for m in members) > UNZIP_FACTOR * limit_mb * 1024 * 1024:
                raise TooLarge(f"the zip's frames unpack to more than {UNZIP_FACTOR * limit_mb} MB; "
                               "send fewer or smaller frames")
            os.makedirs(folder, exist_ok=True)
            for member in members:
                name = check_name(os.path.basename(member.filename), "frame name")
                target = os.path.join(folder, name)
                if os.path.exists(target):
                    raise VOSError(f"the zip holds two frames named {name!r}; keep one")
                with archive.open(member) as src, open(target, "wb") as dst:
                    dst.write(src.read())
    except zipfile.BadZipFile:
        raise VOSError("the uploaded .zip file is not a readable zip archive") from None
    return folder


def _is_frame(member: zipfile.ZipInfo) -> bool:
    """Whether a zip entry is an image file (not a folder, not macOS metadata, not hidden)."""
    base = os.path.basename(member.filename)
    return (not member.is_dir() and not base.startswith(".") and "__MACOSX" not in member.filename
            and os.path.splitext(base)[1].lower() in IMAGE_EXTENSIONS)


def allowed_path(path: str, allowed_dir: str) -> str:
    """`path` (absolute, or relative to `allowed_dir`) resolved, or Refused when it is outside that folder."""
    if not allowed_dir:
        raise Refused("opening files on the server is off; start the app with `allowed_dir FOLDER` to "
                      "allow the videos inside FOLDER, or upload the video")
    root = os.path.realpath(allowed_dir)
    real = os.path.realpath(os.path.join(root, path.strip()))
    if os.path.commonpath([root, real]) != root:
        raise Refused(f"{path} is outside the allowed folder {allowed_dir}; open a video inside it")
    if not os.path.exists(real):
        raise VOSError(f"{path} does not exist in the allowed folder {allowed_dir}")
    return real


def labels_from_bytes(body: bytes, size, t: int) -> np.ndarray:
    """Raw H*W bytes (one label a pixel, row by row) -> [H, W] uint8, or a VOSError naming frame `t`."""
    height, width = size
    if len(body) != height * width:
        raise VOSError(f"the mask sent for frame {t} has {len(body)} pixels; the frame has {height}x{width}")
    return np.frombuffer(body, dtype=np.uint8).reshape(height, width).copy()

