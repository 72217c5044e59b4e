"""Speed of the DAVIS evaluation (libs.evaluation) next to vos-benchmark, on generated DAVIS-like data.

    .venv/bin/python benchmarks/eval_speed.py                   # 30 sequences x 70 frames, 480x854
    .venv/bin/python benchmarks/eval_speed.py --sequences 4 --frames 20 --workers 1

Prints wall seconds, milliseconds per frame-object (scored frames x objects) and CPU seconds (all
processes) for each tool and worker count, and the largest difference between the two tools'
per-object J and F means. Wall time only shows the scaling with workers on an idle machine.
"""
import argparse
import io
import os
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext, redirect_stdout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from libs.evaluation.davis import evaluate_davis  # noqa: E402
from libs.evaluation.synthetic import write_davis_like  # noqa: E402


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--frames", type=int, default=70)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting; the fastest is shown")
    parser.add_argument("--data", default=None, help="folder to keep the generated data in (reused if present)")
    parser.add_argument("--skip_vos_benchmark", action="store_true")
    return parser.parse_args()


@contextmanager
def pinned_to_one_cpu():
    """Run the block (and processes it starts) on a single CPU, so '1 worker' means one core."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def prepare(args: argparse.Namespace) -> str:
    """Generate (or reuse) the data; the folder holding davis/ and results/."""
    folder = args.data or tempfile.mkdtemp(prefix="eval-speed-")
    marker = os.path.join(folder, f"ready-{args.sequences}x{args.frames}-{args.height}x{args.width}")
    if not os.path.exists(marker):
        shutil.rmtree(os.path.join(folder, "davis"), ignore_errors=True)
        shutil.rmtree(os.path.join(folder, "results"), ignore_errors=True)
        start = time.perf_counter()
        write_davis_like(os.path.join(folder, "davis"), os.path.join(folder, "results"), args.sequences,
                         args.frames, (args.height, args.width), objects=(2, 3), seed=2017)
        open(marker, "w").close()
        print(f"generated {args.sequences} sequences x {args.frames} frames in {time.perf_counter() - start:.1f} s")
    return folder


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_ours(folder: str, workers: int, repeat: int):
    """(best wall seconds, CPU seconds of that run, results) of libs.evaluation."""
    best, cpu, results = float("inf"), 0.0, None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        results = evaluate_davis(os.path.join(folder, "davis"), os.path.join(folder, "results"), workers=workers)
        if time.perf_counter() - start < best:
            best, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    return best, cpu, results


def time_vos_benchmark(folder: str, workers: int, repeat: int):
    """(best wall seconds, its CPU seconds, per-sequence {object: (J, F)} in [0, 1]) of vos-benchmark."""
    from vos_benchmark.benchmark import benchmark
    gt = os.path.join(folder, "davis", "Annotations", "480p")
    best, cpu, objects = float("inf"), 0.0, None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        with redirect_stdout(io.StringIO()):
            _, _, _, metrics = benchmark([gt], [os.path.join(folder, "results")], num_processes=workers, verbose=False)
        if time.perf_counter() - start < best:
            best, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
        objects = {seq: {k: (iou[k] / 100.0, bf[k] / 100.0) for k in iou} for seq, (iou, bf) in metrics[0].items()}
    return best, cpu, objects


def largest_difference(results, theirs) -> float:
    """Largest |ours - vos-benchmark| over per-object J-Mean and F-Mean."""
    worst = 0.0
    for row in results.per_object:
        seq, obj = row["Sequence"].rsplit("_", 1)
        j, f = theirs[seq][int(obj)]
        worst = max(worst, abs(row["J-Mean"] - j), abs(row["F-Mean"] - f))
    return worst


def main() -> int:
    """Run every setting and print the table."""
    args = parse_args()
    folder = prepare(args)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    rows, results, theirs = [], None, None
    for count in workers:
        pin = pinned_to_one_cpu() if count == 1 else nullcontext()
        with pin:
            seconds, cpu, results = time_ours(folder, count, args.repeat)
            rows.append(("libs.evaluation", count, seconds, cpu))
            if not args.skip_vos_benchmark:
                seconds, cpu, theirs = time_vos_benchmark(folder, count, args.repeat)
                rows.append(("vos-benchmark", count, seconds, cpu))
    units = sum(seq.j.size for seq in results.sequences)
    print(f"\n{len(results.sequences)} sequences, {units} frame-objects ({args.height}x{args.width}), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; 1 worker runs pinned to one CPU")
    print(f"{'tool':<16} {'workers':>7} {'seconds':>9} {'ms/frame-object':>16} {'CPU seconds':>12}")
    for tool, count, seconds, cpu in rows:
        print(f"{tool:<16} {count:>7} {seconds:>9.2f} {1000.0 * seconds / units:>16.3f} {cpu:>12.2f}")
    print(f"J&F-Mean {results.global_row['J&F-Mean']:.4f}")
    if theirs is not None:
        print(f"largest per-object |J-Mean or F-Mean difference| vs vos-benchmark: "
              f"{largest_difference(results, theirs):.2e}")
    if args.data is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
