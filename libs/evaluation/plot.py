"""Picture of a DAVIS evaluation: J&F per sequence and the per-frame J of every object."""
import io

import numpy as np


def plot_results(sequences: list, set_name: str) -> bytes:
    """PNG bytes: top, bar chart of each sequence's J&F (mean over its objects); bottom, J curves."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    names = [seq.name for seq in sequences]
    jf = [_sequence_jf(seq) for seq in sequences]
    fig = Figure(figsize=(max(8.0, 0.35 * len(names) + 2.0), 8.0), dpi=100)
    bars, curves = fig.subplots(2, 1)
    positions = np.arange(len(names))
    bars.bar(positions, jf, color="tab:blue")
    bars.set_xticks(positions)
    bars.set_xticklabels(names, rotation=90, fontsize=7)
    bars.set_ylim(0.0, 1.0)
    bars.set_ylabel("J&F-Mean")
    bars.set_title(f"DAVIS {set_name}: J&F per sequence")
    for seq in sequences:
        for index in range(seq.j.shape[0]):
            curves.plot(np.arange(1, seq.j.shape[1] + 1), seq.j[index], linewidth=0.8, alpha=0.7)
    curves.set_ylim(0.0, 1.0)
    curves.set_xlabel("scored frame")
    curves.set_ylabel("J (one curve per object)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _sequence_jf(seq) -> float:
    """Mean over the objects of a sequence of (J-Mean + F-Mean) / 2; 0 when it has no object."""
    if seq.j.shape[0] == 0:
        return 0.0
    return float(np.mean((np.nanmean(seq.j, axis=1) + np.nanmean(seq.f, axis=1)) / 2.0))
