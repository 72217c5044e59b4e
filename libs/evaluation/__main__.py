"""DAVIS evaluation from the command line, with the official toolkit's flags and CSV files.

    python3 -m libs.evaluation --davis_path ROOT --results_path DIR --set val --task semi-supervised
"""
import argparse
import sys
from typing import List, Optional

from ..errors import VOSError


def build_parser() -> argparse.ArgumentParser:
    """Flags of the official evaluation_method.py plus --year, --sequences, --workers, --device."""
    parser = argparse.ArgumentParser(prog="python3 -m libs.evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis_path", required=True, help="DAVIS root (JPEGImages, Annotations, ImageSets)")
    parser.add_argument("--results_path", required=True, help="folder with one folder of PNGs per sequence")
    parser.add_argument("--set", default="val", help="sequence list ImageSets/<year>/<set>.txt (default val)")
    parser.add_argument("--task", default="semi-supervised", help="only semi-supervised is supported")
    parser.add_argument("--year", type=int, default=2017, choices=[2016, 2017],
                        help="2017: multi-object; 2016: all ids merged into one object")
    parser.add_argument("--sequences", default="", help="comma-separated sequence names (default: the set)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when present)")
    parser.add_argument("--no_plot", action="store_true", help="do not write the per-sequence PNG plot")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the evaluation, write CSVs (and plot) into results_path, print tables; 2 on user error."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except VOSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """The evaluation proper; raises VOSError for bad input."""
    from .davis import evaluate_davis

    if args.task != "semi-supervised":
        raise VOSError(f"--task {args.task!r} is not supported; only semi-supervised is")
    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()] or None
    print(f"Evaluating sequences for the {args.task} task (DAVIS {args.year}, set {args.set})...")
    results = evaluate_davis(args.davis_path, args.results_path, set_name=args.set, year=args.year,
                             sequences=sequences, workers=args.workers, device=args.device)
    paths = results.write_csvs(args.results_path)
    print(f"Global results saved in {paths['global']}")
    print(f"Per-sequence results saved in {paths['per_sequence']}")
    if not args.no_plot:
        print(f"Plot saved in {results.plot(args.results_path)}")
    print(results.tables_text())
    print(f"\nTotal time: {results.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
