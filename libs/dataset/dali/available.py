"""NVIDIA DALI is optional: one place that says what to install when it is missing, and what went wrong."""
import re

from ...errors import VOSError

INSTALL_HINT = ("make setup-dali, or pip install -r requirements-dali.txt (nvidia-dali-cuda130 for CUDA 13 "
                "drivers; nvidia-dali-cuda120 for CUDA 12)")


def require_dali() -> None:
    """A one-line VOSError saying what to install when NVIDIA DALI cannot be imported."""
    try:
        import nvidia.dali  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except ImportError as err:
        raise VOSError(f"data_backend DALI needs NVIDIA DALI, which cannot be imported ({err}); install it with "
                       f"{INSTALL_HINT}, or set data_backend PIL") from None


def error_reason(err: Exception) -> str:
    """The cause in a DALI pipeline error (the first line after 'encountered:'), without the pipeline
    boilerplate ('Critical error in pipeline', 'C++ context', ...)."""
    text = str(err).split("encountered:", 1)[-1]
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(("C++ context", "Current pipeline", "Critical error"))]
    return re.sub(r'^Assert on ".*?" failed: ', "", lines[0]) if lines else type(err).__name__
