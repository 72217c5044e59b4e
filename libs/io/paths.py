"""Path helpers: atomic output files, output paths that cannot escape their folder, natural sorting."""
import os
import re
import uuid
from contextlib import contextmanager
from typing import Iterator, List, Tuple, Union

from ..errors import VOSError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> Tuple[Union[int, str], ...]:
    """Sort key that orders embedded numbers by value: 'f2.jpg' before 'f10.jpg'."""
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))


def list_images(folder: str) -> List[str]:
    """File names (not paths) of the images in `folder` (jpg/jpeg/png/bmp, any case), natural-sorted."""
    names = [e.name for e in os.scandir(folder)
             if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    return sorted(names, key=natural_key)


def check_name(name: str, what: str = "name") -> str:
    """`name` unchanged when it is one plain path component; otherwise a VOSError naming it."""
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name
           or os.path.isabs(name) or (os.sep in name) or (os.altsep is not None and os.altsep in name)
           or re.match(r"^[A-Za-z]:", name) is not None)
    if bad:
        raise VOSError(f"{what} {name!r} is not a plain file name (no '/', '\\', '..', drive or empty "
                       "name allowed); rename it")
    return name


def safe_join(root: str, *names: str) -> str:
    """`root` joined with `names`; a VOSError when a name could escape `root` ('..', absolute, separators)."""
    for name in names:
        check_name(name, "output name")
    path = os.path.join(root, *names)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise VOSError(f"output path {path!r} escapes its folder {root!r} (a symbolic link?); "
                       "choose another output name")
    return path


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to `path` (same extension); on success it replaces `path`.

    The parent folder is created. On any error the temporary file is removed and the error re-raised;
    an OSError while writing becomes a VOSError naming `path`.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:12]}.tmp{ext}")
    try:
        os.makedirs(folder, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise VOSError(f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    """Delete `path` if it exists (used to clean up a failed atomic write)."""
    try:
        os.remove(path)
    except OSError:
        pass
