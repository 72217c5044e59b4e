"""Results of a DAVIS evaluation: statistics, the official CSV files, text tables and a plot."""
import csv
import io
import math
import os
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from ..io.paths import atomic_path

from .metrics import db_statistics

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
SEQUENCE_COLUMNS = ["Sequence", "J-Mean", "F-Mean"]


@dataclass
class SequenceScores:
    """Per-frame scores of one sequence: j and f are [K objects, T scored frames]."""

    name: str
    frames: List[str]
    j: np.ndarray
    f: np.ndarray


class DavisResults:
    """Scores of every sequence, with the official global and per-object tables."""

    def __init__(self, sequences: List[SequenceScores], set_name: str, year: int, seconds: float):
        self.sequences = sequences
        self.set_name = set_name
        self.year = year
        self.benchmark = f"DAVIS {year}"        # what the table title says was scored
        self.seconds = seconds
        self.per_object = _per_object_rows(sequences)
        self.global_row = _global_row(self.per_object)

    def csv_paths(self, out_dir: str) -> Dict[str, str]:
        """Official file names: global_results-<set>.csv and per-sequence_results-<set>.csv."""
        return {"global": os.path.join(out_dir, f"global_results-{self.set_name}.csv"),
                "per_sequence": os.path.join(out_dir, f"per-sequence_results-{self.set_name}.csv")}

    def write_csvs(self, out_dir: str) -> Dict[str, str]:
        """Write both CSVs (3 decimals, official columns and row names) atomically; their paths."""
        paths = self.csv_paths(out_dir)
        global_rows = [[self.global_row[c] for c in GLOBAL_COLUMNS]]
        object_rows = [[row[c] for c in SEQUENCE_COLUMNS] for row in self.per_object]
        write_atomic(paths["global"], _csv_text(GLOBAL_COLUMNS, global_rows).encode("utf-8"))
        write_atomic(paths["per_sequence"], _csv_text(SEQUENCE_COLUMNS, object_rows).encode("utf-8"))
        return paths

    def tables_text(self) -> str:
        """Both tables as printed text, like the official script's output."""
        title = f" Global results for {self.set_name} ({self.benchmark}) "
        lines = [title.center(86, "-")]
        lines += _format_table(GLOBAL_COLUMNS, [[self.global_row[c] for c in GLOBAL_COLUMNS]])
        lines += ["", f" Per sequence results for {self.set_name} ".center(58, "-")]
        lines += _format_table(SEQUENCE_COLUMNS, [[r[c] for c in SEQUENCE_COLUMNS] for r in self.per_object])
        return "\n".join(lines)

    def plot(self, out_dir: str) -> str:
        """PNG beside the CSVs: J&F per sequence (bars) and per-frame J of every object (curves)."""
        from .plot import plot_results
        path = os.path.join(out_dir, f"per-sequence_results-{self.set_name}.png")
        write_atomic(path, plot_results(self.sequences, self.set_name))
        return path


def _per_object_rows(sequences: List[SequenceScores]) -> List[Dict[str, object]]:
    """One row per object named <sequence>_<object id>, with its J and F statistics."""
    rows = []
    for seq in sequences:
        for index in range(seq.j.shape[0]):
            j_mean, j_recall, j_decay = db_statistics(seq.j[index])
            f_mean, f_recall, f_decay = db_statistics(seq.f[index])
            rows.append({"Sequence": f"{seq.name}_{index + 1}", "J-Mean": j_mean, "F-Mean": f_mean,
                         "J&F-Mean": (j_mean + f_mean) / 2.0, "J-Recall": j_recall, "J-Decay": j_decay,
                         "F-Recall": f_recall, "F-Decay": f_decay})
    return rows


def _global_row(rows: List[Dict[str, object]]) -> Dict[str, float]:
    """Plain means over all objects (NaN propagates, as in the toolkit); J&F = (J + F) / 2."""
    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows])) if rows else math.nan

    out = {key: mean(key) for key in GLOBAL_COLUMNS[1:]}
    out["J&F-Mean"] = (out["J-Mean"] + out["F-Mean"]) / 2.0
    return {key: out[key] for key in GLOBAL_COLUMNS}


def _cell(value: object) -> str:
    """CSV cell: floats with 3 decimals (NaN left empty, like pandas), the rest as text."""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else "%.3f" % value
    return str(value)


def _csv_text(columns: List[str], rows: List[List[object]]) -> str:
    """CSV with a header line and '\\n' line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue()


def _format_table(columns: List[str], rows: List[List[object]]) -> List[str]:
    """Right-aligned text table (floats with 6 decimals)."""
    cells = [[("%.6f" % v) if isinstance(v, (float, np.floating)) else str(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [" ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += [" ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return lines


def write_atomic(path: str, data: bytes) -> None:
    """Write bytes to a temporary file in the same folder, then rename it over `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)