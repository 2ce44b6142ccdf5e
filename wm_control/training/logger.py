"""Run logging: metrics CSVs, TensorBoard events, the learning-curve plot.

On resume the logs continue where the checkpoint was taken: rows a killed run wrote after its
last checkpoint are dropped (the resumed run writes those steps again), so every step is logged once.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "plot_learning_curve"]


class RunLogger:
    """Writes ``<run>/metrics/{train,eval}.csv`` and TensorBoard events under ``<run>/tb``.

    CSV columns are fixed by the first row written to a file; later rows with new keys get them
    dropped (and existing files keep their header on resume).

    ``resume_step``: the step of the checkpoint a run resumes from. Existing CSV rows after it are
    removed (rewritten atomically) and TensorBoard hides events after it (``purge_step``);
    ``dropped_rows`` counts the removed rows per file.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        (self.run_dir / "metrics").mkdir(parents=True, exist_ok=True)
        self._headers: dict[str, list[str]] = {}
        self.dropped_rows: dict[str, int] = {}
        if resume_step is not None:
            for path in sorted((self.run_dir / "metrics").glob("*.csv")):
                dropped = _truncate_after(path, resume_step)
                if dropped:
                    self.dropped_rows[path.stem] = dropped
        self._tb: Any = None
        if tensorboard:
            from tensorboardX import SummaryWriter  # lazy: only runs that log need it

            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)

    def log(self, kind: str, step: int, metrics: dict[str, float]) -> None:
        """Append one row to ``metrics/<kind>.csv`` and the scalars to TensorBoard (``kind/name``)."""
        path = self.run_dir / "metrics" / f"{kind}.csv"
        row = {"step": step, **metrics}
        if kind not in self._headers:
            if path.exists() and path.stat().st_size > 0:
                with open(path, newline="") as f:
                    self._headers[kind] = next(csv.reader(f))
            else:
                self._headers[kind] = list(row)
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerow(self._headers[kind])
        header = self._headers[kind]
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in header])
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, int | float) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _truncate_after(path: Path, step: int) -> int:
    """Remove the rows of a metrics CSV whose ``step`` is above ``step`` (and incomplete rows);
    returns how many.
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "step" not in rows[0]:
        return 0
    header, col = rows[0], rows[0].index("step")

    def kept(row: list[str]) -> bool:  # a killed run may also leave a half-written last line
        try:
            return len(row) == len(header) and int(float(row[col])) <= step
        except ValueError:
            return False

    keep = [header] + [r for r in rows[1:] if kept(r)]
    dropped = len(rows) - len(keep)
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(keep)
        tmp.replace(path)
    return dropped


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_learning_curve(eval_csv: str | Path, out_png: str | Path, title: str) -> Path | None:
    """Plot eval return (and success rate when present) against env steps; None if no data yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(eval_csv)
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    steps = [int(r["step"]) for r in rows]
    ret = [float(r["return_mean"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, ret, "o-", color="tab:blue", label="eval return")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return", color="tab:blue")
    ax.grid(alpha=0.3)
    if "success_rate" in rows[0] and rows[0]["success_rate"] not in ("", "nan"):
        ax2 = ax.twinx()
        ax2.plot(steps, [float(r["success_rate"]) for r in rows], "s--", color="tab:green", label="success rate")
        ax2.set_ylabel("success rate", color="tab:green")
        ax2.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    fig.tight_layout()
    out = Path(out_png)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)
    return out
