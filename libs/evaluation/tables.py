"""Score tables of the MOSE, LVOS and SA-V scorers: one global row, one row per object, written as
global_results-<name>.csv and per-sequence_results-<name>.csv (3 decimals, NaN left empty) like the
DAVIS toolkit's files."""
import os
from dataclasses import dataclass, field
from typing import Dict, List

from .report import _csv_text, _format_table, write_atomic


@dataclass
class ScoreTable:
    """Scores of one evaluated set: `main` names the column returned as its score."""

    name: str                                   # names the files: global_results-<name>.csv
    title: str                                  # what was scored, for the printed table
    global_columns: List[str]
    object_columns: List[str]                   # the first is 'Sequence' (<video>_<object>)
    main: str
    global_row: Dict[str, float] = field(default_factory=dict)
    rows: List[Dict[str, object]] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The main score (e.g. J&F-Mean)."""
        return float(self.global_row[self.main])

    def write_csvs(self, out_dir: str) -> Dict[str, str]:
        """Write both CSVs atomically into `out_dir`; their paths."""
        paths = {"global": os.path.join(out_dir, f"global_results-{self.name}.csv"),
                 "per_sequence": os.path.join(out_dir, f"per-sequence_results-{self.name}.csv")}
        os.makedirs(out_dir, exist_ok=True)
        global_rows = [[self.global_row[c] for c in self.global_columns]]
        object_rows = [[row[c] for c in self.object_columns] for row in self.rows]
        write_atomic(paths["global"], _csv_text(self.global_columns, global_rows).encode("utf-8"))
        write_atomic(paths["per_sequence"], _csv_text(self.object_columns, object_rows).encode("utf-8"))
        return paths

    def text(self) -> str:
        """Both tables as printed text."""
        lines = [f" Global results for {self.name} ({self.title}) ".center(86, "-")]
        lines += _format_table(self.global_columns, [[self.global_row[c] for c in self.global_columns]])
        lines += ["", f" Per object results for {self.name} ".center(58, "-")]
        lines += _format_table(self.object_columns, [[r[c] for c in self.object_columns] for r in self.rows])
        return "\n".join(lines)
