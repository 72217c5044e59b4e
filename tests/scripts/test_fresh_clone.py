"""What a new user hit on a fresh clone (issue 27), through the real command lines, in-process
(`run_inprocess`), except the API snippet (a subprocess in another folder) and the Makefile (make -n)."""
import contextlib
import functools
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from tests.helpers.models import save_stm
from tests.helpers.scripts import FRAME_SIZE, REPO, TINY, read_png, run_inprocess, write_synthetic
from libs.dataset.synthetic import write_video_file
from libs.io import davis_palette, write_indexed_png

DEMO = ["demo/demo.py", "--cfg", "demo/demo.yaml"] + TINY + ["loop", "0", "input_size", "[24,40]"]
SUMMARY = re.compile(r"live: (\d+) frames segmented at [\d.]+ FPS; dropped (\d+) of (\d+) captured frames")


def _pngs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".png"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A generated 8-frame mp4 (25 FPS) and its first mask."""
    return write_video_file(str(tmp_path_factory.mktemp("clip") / "clip.mp4"), seed=3, num_frames=8,
                            size=FRAME_SIZE)


# 1. a live rerun replaces the earlier run's results -----------------------------------------------
def test_live_rerun_leaves_only_its_own_results(clip, tmp_path):
    video, mask = clip
    out = tmp_path / "out"
    whole = run_inprocess(DEMO + ["video_path", video, "mask_path", mask, "output_dir", str(out)])
    assert whole.returncode == 0 and len(_pngs(out / "clip")) == 8, whole.describe()
    live = run_inprocess(DEMO + ["video_path", video, "mask_path", mask, "output_dir", str(out), "live", "True"])
    assert live.returncode == 0, live.describe()
    segmented = int(SUMMARY.search(live.stderr)[1])
    names = _pngs(out / "clip")
    assert len(names) == segmented and names[0] == "00000.png", (names, live.stderr)
    assert sorted(os.listdir(out / "clip" / "overlay")) == [n[:-4] + ".jpg" for n in names]
    assert "removed 17 result file(s) of an earlier run" in live.stderr     # 8 PNGs, 8 overlays, overlay.mp4


# 4. a URL to a video file is segmented whole -------------------------------------------------------
class _FileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without byte ranges (as Python's server does), quietly."""

    def log_message(self, *args):
        pass


class _RangeHandler(_FileHandler):
    """Serves a folder with byte ranges (`Range: bytes=a-b` -> 206), as most file servers do."""

    def send_head(self):
        found = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if not found or not os.path.isfile(path):
            return super().send_head()
        data = open(path, "rb").read()
        start = int(found[1] or 0)
        end = min(int(found[2]) if found[2] else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return _Body(data[start:end + 1])


class _Body:
    """A bytes body for SimpleHTTPRequestHandler's copyfile."""

    def __init__(self, data):
        self.data = data

    def read(self, n=-1):
        chunk, self.data = (self.data, b"") if n < 0 else (self.data[:n], self.data[n:])
        return chunk

    def close(self):
        pass


@contextlib.contextmanager
def _serving(folder, handler):
    """The base URL of a local server (127.0.0.1, a free port) serving `folder` while inside."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["byte ranges", "no byte ranges"])
def served(request, clip):
    """(the clip's URL on a local server, its mask)."""
    handler = _RangeHandler if request.param == "byte ranges" else _FileHandler
    with _serving(os.path.dirname(clip[0]), handler) as base:
        yield f"{base}/clip.mp4", clip[1]


def test_a_url_to_a_video_file_is_downloaded_and_every_frame_segmented(served, tmp_path):
    url, mask = served
    run = run_inprocess(DEMO + ["video_path", url, "mask_path", mask, "output_dir", str(tmp_path)])
    assert run.returncode == 0, run.describe()
    assert re.search(rf"downloading {re.escape(url)} \(0\.\d MB\) to a temporary file", run.stderr), run.stderr
    assert _pngs(tmp_path / "clip") == [f"{i:05d}.png" for i in range(8)]
    assert len(os.listdir(tmp_path / "clip" / "overlay")) == 8 and "dropped" not in run.stderr
    given = np.asarray(Image.open(mask))
    assert np.array_equal(read_png(str(tmp_path / "clip" / "00000.png"))[1], given)


@pytest.mark.parametrize("path, expect", [("none.mp4", "the server answered HTTP 404"),
                                          ("", "serves a text/html page, not a video")])
def test_a_url_that_is_no_video_is_one_line(served, tmp_path, path, expect):
    url, mask = served
    run = run_inprocess(DEMO + ["video_path", url.replace("clip.mp4", path), "mask_path", mask,
                                "output_dir", str(tmp_path)])
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    assert expect in run.error_lines()[0] and not os.listdir(tmp_path)


def test_live_true_on_a_file_served_without_byte_ranges_says_why(tmp_path):
    """The bundled sample served without byte ranges cannot be read as a stream: one line says what to do."""
    with _serving(os.path.join(REPO, "demo", "sample"), _FileHandler) as base:
        run = run_inprocess(DEMO + ["video_path", f"{base}/sample.mp4", "live", "True", "output_dir", str(tmp_path)])
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    assert "opened but delivered no frame" in run.error_lines()[0]
    assert "served without byte ranges cannot be read as a stream: leave `live` False" in run.error_lines()[0]


# 3. the Python API from any folder --------------------------------------------------------------
def test_readme_api_snippet_runs_from_another_folder(clip, tmp_path):
    """README's snippet, saved in a folder outside the repository and run there by the venv's python."""
    video, mask = clip
    ckpt = save_stm(str(tmp_path / "r18.pth"), "resnet18")
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    code = re.search(r"```python\n(.*?)```", readme[readme.index("### From Python"):], re.S).group(1)
    assert "from stm_cycle.api import VideoSession" in code, \
        "README's Python API snippet must import the installed package: from stm_cycle.api import VideoSession"
    swaps = {"demo/sample/sample.mp4": video, "quickstart/checkpoint/epoch-0006.pth": ckpt,
             "demo/sample/sample_mask.png": mask, "output/api/sample": "exported",
             "input_size=(48, 84)": "input_size=(32, 64), arch='resnet18', keydim=16, valdim=32"}
    for old, new in swaps.items():
        assert old in code, f"the README snippet no longer contains {old!r}"
        code = code.replace(old, new)
    (tmp_path / "mine.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "mine.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [int(line.split()[0]) for line in run.stdout.splitlines()] == list(range(8))
    assert _pngs(tmp_path / "exported") == [f"{i:05d}.png" for i in range(8)]


def test_the_installed_package_lists_every_folder_of_libs():
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["tool"]["setuptools"]
    libs = os.path.join(REPO, "libs")
    folders = sorted(os.path.relpath(d, libs) for d, _, files in os.walk(libs) if "__init__.py" in files)
    expected = sorted("stm_cycle" + ("" if f == "." else "." + f.replace(os.sep, ".")) for f in folders)
    assert project["package-dir"] == {"stm_cycle": "libs"} and sorted(project["packages"]) == expected


def test_libs_imports_itself_only_relatively():
    """The installed package is named stm_cycle, so libs/ must not import itself as `libs`."""
    path = os.path.join(REPO, "tools", "relative_imports.py")
    spec = importlib.util.spec_from_file_location("relative_imports", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    found = [f"{os.path.relpath(p, REPO)}:{n}: {old.strip()} -> {new.strip()}" for p, n, old, new in tool.all_fixes()]
    assert not found, ("absolute libs imports (run .venv/bin/python tools/relative_imports.py --fix):\n"
                       + "\n".join(found))


# 5. the smaller ones -----------------------------------------------------------------------------
def test_quickstart_says_once_that_it_runs_on_the_cpu(tmp_path, monkeypatch, capsys):
    """Without CUDA every step gets gpu_id -1 (no CUDA warning from each of the four) and one line says so."""
    import torch

    from libs import quickstart

    steps = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(quickstart, "run", lambda args: steps.append(args) or "J&F-Mean\n 0.100\n")
    (tmp_path / "data" / "SYNTHETIC").mkdir(parents=True)          # generated already
    quickstart.main(["--out", str(tmp_path), "amp", "False"])
    printed = capsys.readouterr().out
    assert len(steps) == 4 and printed.count("CUDA is not available") == 1, printed
    last_gpu_id = [dict(zip(args[1::2], args[2::2]))["gpu_id"] for args in steps]      # later values win
    assert last_gpu_id == ["-1"] * 4, steps


@pytest.mark.parametrize("arch, size, loop, tip", [
    ("resnet50", (240, 427), 10, "for a quick look add `loop 0 input_size '[120, 214]'`, or test a ResNet-18"),
    ("resnet18", (240, 427), 0, "for a quick look add `input_size '[120, 214]'`"),
    ("resnet18", (120, 214), 3, "for a quick look add `loop 0`"),
    ("resnet50", (120, 214), 0, "for a quick look test a ResNet-18 checkpoint"),
    ("resnet18", (24, 40), 0, None),
])
def test_cpu_hint_suggests_only_keys_not_set(arch, size, loop, tip):
    spec = importlib.util.spec_from_file_location("test_script", os.path.join(REPO, "test.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = script.cpu_expectation(arch, size, loop)
    assert text.startswith(f"on the CPU: {arch} at {size[0]}x{size[1]}, loop {loop}; ")
    assert (tip in text) if tip else ("quick look" not in text), text


def test_initial_that_is_a_folder_is_named_as_one(tmp_path):
    save_stm(str(tmp_path / "epoch-0006.pth"), "resnet18")
    run = run_inprocess(DEMO + ["initial", str(tmp_path), "output_dir", str(tmp_path / "out")])
    assert run.returncode == 2 and run.error_lines() == [
        f"error: checkpoint {str(tmp_path)!r} is a folder, not a file (it holds epoch-0006.pth); give one "
        "checkpoint file to `initial` (or `resume`)"], run.describe()


def test_output_dir_that_is_the_frame_folder_names_a_real_path(tmp_path):
    root = tmp_path / "SYNTHETIC"
    write_synthetic(str(root), 1, 3, seed=4)
    frames = root / "JPEGImages" / "480p" / "synth-val-000"
    mask = root / "Annotations" / "480p" / "synth-val-000" / "00000.png"
    run = run_inprocess(DEMO + ["video_path", str(frames), "mask_path", str(mask), "output_dir", str(frames.parent)])
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    assert f"holds the input {frames / '00000.jpg'}: set `output_dir`" in run.error_lines()[0]


def test_label_255_beside_objects_is_logged_as_void_once(tmp_path):
    root = tmp_path / "SYNTHETIC"
    write_synthetic(str(root), 1, 3, seed=6, num_objects=1)
    frames = root / "JPEGImages" / "480p" / "synth-val-000"
    mask = root / "Annotations" / "480p" / "synth-val-000" / "00000.png"
    labels = np.asarray(Image.open(mask)).copy()
    labels[:2, :5] = 255
    write_indexed_png(str(mask), labels, davis_palette())
    demo = run_inprocess(DEMO + ["video_path", str(frames), "mask_path", str(mask), "output_dir", str(tmp_path / "d")])
    test = run_inprocess(["test.py", "--cfg", "config.yaml", "valset", "SYNTHETIC", "data_root", str(tmp_path),
                          "output_dir", str(tmp_path / "t")] + TINY + ["loop", "0", "input_size", "[24,40]"])
    for run in (demo, test):
        assert run.returncode == 0, run.describe()
        lines = [line for line in run.stderr.splitlines() if "label 255" in line]
        assert len(lines) == 1 and f"{mask}: label 255 on 10 pixel(s) is void, not an object" in lines[0], run.stderr
    written = read_png(str(tmp_path / "d" / "synth-val-000" / "00000.png"))[1]
    assert np.array_equal(written, np.where(labels == 255, 0, labels))


def _installs(target):
    """The requirement files `make TARGET` installs from a fresh clone (-r includes followed), and whether it
    installs the project itself."""
    dry = subprocess.run(["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    files = re.findall(r"pip install .*?-r (\S+)", dry.stdout)
    seen = []
    while files:
        name = files.pop()
        if name not in seen:
            seen.append(name)
            with open(os.path.join(REPO, name), encoding="utf-8") as f:
                files += re.findall(r"^-r (\S+)", f.read(), re.M)
    return set(seen), bool(re.search(r"pip install .*-e \.$", dry.stdout, re.M))


def test_setup_and_quickstart_leave_dali_out_and_test_installs_it():
    quick, quick_project = _installs("quickstart")
    test, test_project = _installs("test")
    assert "requirements-dali.txt" not in quick and "requirements-dev.txt" in quick and quick_project, quick
    assert {"requirements-dali.txt", "requirements-dev.txt"} <= test and test_project, test
    with open(os.path.join(REPO, ".ci", "run"), encoding="utf-8") as f:
        assert re.search(r"^make test\b", f.read(), re.M)
