"""Compare the run a notebook just made with the committed record (results/), without writing it.

    RECORD = load_record("q1_metrics.json")         # at the top, before anything is written
    ...
    verdict(compare(headlines(RECORD), headlines(payload), tolerance={...}))

A headline is either per-seed values (a list: the new mean is judged against the record's 95 %
prediction interval for a mean of as many seeds, utils.stats.prediction_interval) or one number of
one run (a float: judged against an absolute tolerance stated beside it). A re-run on another CPU
acts as one more seed (floating-point paths differ between processors), so the interval, not the
third decimal, is what a re-run can be held to.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from utils.stats import prediction_interval

RESULTS = Path(__file__).resolve().parent.parent / "results"


def load_record(name: str, folder: Path | str = RESULTS) -> dict | None:
    """The committed record ``results/<name>`` as it is now, or None where there is none (a lone
    notebook on Colab has no results/)."""
    path = Path(folder) / name
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def same_design(committed: dict | None, mode: str, config: dict) -> bool:
    """Whether the record was made in this mode with this configuration (compared as JSON)."""
    if committed is None:
        return False
    mine = json.loads(json.dumps(config, default=str))
    return committed.get("mode") == mode and committed.get("config") == mine


def compare(recorded: dict, new: dict, tolerance: dict[str, float]) -> list[dict]:
    """One row per headline of ``new``: recorded, new, the bound and whether new lies inside it."""
    rows = []
    for name, value in new.items():
        old = recorded.get(name)
        per_seed = isinstance(value, (list, tuple))
        row = {"name": name, "recorded": old, "new": sum(value) / len(value) if per_seed else value,
               "low": math.nan, "high": math.nan}
        if old is None:
            row["verdict"] = "not in the record"
        elif per_seed:
            row["recorded"] = sum(old) / len(old)
            row["low"], row["high"] = prediction_interval(old, len(value))
            row["verdict"] = "inside" if row["low"] <= row["new"] <= row["high"] else "OUTSIDE"
        else:
            if name not in tolerance:
                raise ValueError(f"headline {name!r} is one number: give its tolerance in "
                                 "tolerance=")
            row["low"], row["high"] = old - tolerance[name], old + tolerance[name]
            row["verdict"] = "inside" if abs(value - old) <= tolerance[name] else "OUTSIDE"
        rows.append(row)
    return rows


def verdict(rows: list[dict], record_name: str) -> str:
    """Print the comparison as a table and return the one-line verdict it ends with."""
    def fmt(v):
        return f"{v:10.4g}" if isinstance(v, (int, float)) else f"{'-':>10s}"

    print(f"{'headline':44s} {'record':>10s} {'this run':>10s} {'bound':>23s}  verdict")
    for r in rows:
        bound = f"[{r['low']:.4g}, {r['high']:.4g}]" if not math.isnan(r["low"]) else "-"
        print(f"{r['name']:44s} {fmt(r['recorded'])} {fmt(r['new'])} {bound:>23s}  {r['verdict']}")
    out = [r["name"] for r in rows if r["verdict"] == "OUTSIDE"]
    missing = [r["name"] for r in rows if r["verdict"] == "not in the record"]
    judged = len(rows) - len(missing)
    if not judged:
        line = (f"No comparable record {record_name} (none beside this notebook, or another "
                "design).")
    elif out:
        line = (f"This run lands OUTSIDE the record {record_name} on {len(out)} of {judged} "
                f"headlines ({', '.join(out)}): read those numbers from this run, not from the "
                "prose.")
    else:
        line = (f"All {judged} headlines of this run lie inside the bounds of the record "
                f"{record_name}.")
    if missing and judged:
        line += f" Not in the record: {', '.join(missing)}."
    print(line)
    return line
