"""A video file at an http(s) URL, downloaded whole to a temporary file so that every frame is segmented."""
import http.client
import logging
import math
import mimetypes
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO, Optional

from ..errors import VOSError
from .paths import atomic_path
from .video import VIDEO_EXTENSIONS
from ..utils.progress import progress

log = logging.getLogger(__name__)
HTTP_SCHEMES = ("http://", "https://")
TIMEOUT_S = 10.0                  # a server that sends nothing for this long is an error
CHUNK = 1 << 20                   # bytes read at a time (1 MiB: one progress step)
# content types of live streams, read as they come: MJPEG (multipart/x-mixed-replace), HLS playlists
STREAM_TYPES = ("multipart/", "application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl")


def is_http_url(path: str) -> bool:
    """Whether `path` is an http:// or https:// address."""
    return path.strip().lower().startswith(HTTP_SCHEMES)


def download_video(url: str, folder: str, name: str) -> Optional[str]:
    """Download the video file at `url` into `folder`/`name`.<ext> and return its path, or None when the URL
    serves a live stream (MJPEG or HLS, or neither a length nor a video file extension): read it live then."""
    response = _open(url.strip())
    with response:
        ctype = response.headers.get_content_type()               # 'application/octet-stream' when not sent
        length = response.headers.get("Content-Length")
        ext = os.path.splitext(urllib.parse.urlsplit(url.strip()).path)[1].lower()
        if ctype.startswith("text/"):
            raise VOSError(f"{url} serves a {ctype} page, not a video: give the address of the video file "
                           "or stream itself")
        if ctype.startswith(STREAM_TYPES) or (length is None and ext not in VIDEO_EXTENSIONS):
            log.info("%s is a live stream (%s, no length): reading it as it comes", url, ctype)
            return None
        if ext not in VIDEO_EXTENSIONS:
            ext = mimetypes.guess_extension(ctype) or ""
            ext = ext if ext in VIDEO_EXTENSIONS else ".mp4"     # OpenCV reads the container, not the name
        path = os.path.join(folder, name + ext)
        _save(response, url, path, int(length) if length and length.isdigit() else None)
    return path


def _open(url: str):
    """The server's response to GET `url`, or a VOSError saying why there is none."""
    request = urllib.request.Request(url, headers={"User-Agent": "stm-cycle-demo"})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        raise VOSError(f"cannot open {url}: the server answered HTTP {err.code} {err.reason}; "
                       "check the address") from None
    except (OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise VOSError(f"cannot open {url}: {reason}; check the address, that the server is running "
                       "and reachable from here") from None


def _save(response: BinaryIO, url: str, path: str, length: Optional[int]) -> None:
    """Copy the response body into `path` (atomically), with a progress line and one line at the end."""
    size = f"{length / 1e6:.1f} MB" if length is not None else "size not given"
    log.info("downloading %s (%s) to a temporary file to segment every frame (`live True` reads it as a "
             "stream instead, dropping frames when segmenting is slower)", url, size)
    start, done = time.perf_counter(), 0
    total = math.ceil(length / CHUNK) if length is not None else None
    with atomic_path(path) as tmp, open(tmp, "wb") as out, progress(total, "download", unit="MiB", every_s=5.0) as bar:
        while True:
            chunk = _read(response, url, done)
            if not chunk:
                break
            out.write(chunk)
            done += len(chunk)
            bar.update(1)
        if length is not None and done != length:
            raise VOSError(f"the download of {url} ended after {done} of {length} bytes; try again")
    log.info("downloaded %.1f MB in %.1f s", done / 1e6, time.perf_counter() - start)


def _read(response: BinaryIO, url: str, done: int) -> bytes:
    """The next chunk of the body (b'' at its end), or a VOSError when the connection fails or stalls."""
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as err:
        raise VOSError(f"cannot download {url}: {getattr(err, 'strerror', None) or err} after {done} bytes; "
                       "try again") from None
