"""The one comparison every study in this repository uses.

    s = summary([0.70, 0.69, 0.69])      # n, mean, sd (n - 1), se, the values
    d = paired(treated, baseline)        # per-seed differences: mean, se, 95 % t-interval, effect
    d["effect"]                          # True only where the interval excludes 0
    d["detectable"]                      # the smallest difference this n and spread detects

Seeds are paired: seed s of every row shares its initial weights and batches with seed s of the
baseline, so the per-seed difference removes what the seeds share. An "effect" is a paired 95 %
t-interval that excludes 0 (Student 1908; scipy.stats.t). A bimodal outcome (some seeds collapse)
is counted, not averaged: ``split``. A re-run's mean is judged against the record's prediction
interval: ``prediction_interval``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _st

CONFIDENCE = 0.95
POWER = 0.80


def _values(values, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float).reshape(-1)
    if a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"{name} must be a non-empty list of finite numbers; got {list(a)}")
    return a


def _t(q: float, n: int) -> float:
    return float(_st.t.ppf(q, n - 1)) if n > 1 else math.nan


def summary(values: Sequence[float]) -> dict:
    """Per-seed values -> {n, mean, sd, se, values}; sd and se are NaN for one value."""
    a = _values(values, "values")
    sd = float(a.std(ddof=1)) if a.size > 1 else math.nan
    return {"n": int(a.size), "mean": float(a.mean()), "sd": sd, "se": sd / math.sqrt(a.size),
            "values": a.tolist()}


def detectable(sd: float, n: int, confidence: float = CONFIDENCE, power: float = POWER) -> float:
    """Smallest true mean difference a paired t-test at this n detects with ``power`` (80 %):
    (t_{1 - alpha/2} + t_{power}) * sd / sqrt(n), with n - 1 degrees of freedom."""
    if n < 2:
        return math.nan
    return (_t(0.5 + confidence / 2, n) + _t(power, n)) * sd / math.sqrt(n)


def paired(treated: Sequence[float], baseline: Sequence[float],
           confidence: float = CONFIDENCE) -> dict:
    """Per-seed differences treated - baseline: {n, differences, mean, sd, se, low, high, effect,
    detectable}. ``effect``: the t-interval [low, high] excludes 0."""
    a, b = _values(treated, "treated"), _values(baseline, "baseline")
    if a.shape != b.shape:
        raise ValueError(f"paired() needs one value per seed on both sides; got {a.size} and "
                         f"{b.size}")
    d = summary(a - b)
    half = _t(0.5 + confidence / 2, d["n"]) * d["se"]
    low, high = d["mean"] - half, d["mean"] + half
    return {"n": d["n"], "differences": d["values"], "mean": d["mean"], "sd": d["sd"],
            "se": d["se"], "low": low, "high": high, "effect": bool(low > 0 or high < 0),
            "detectable": detectable(d["sd"], d["n"], confidence)}


def split(values: Sequence[float], threshold: float, above: str = "collapsed") -> dict:
    """A bimodal outcome counted: how many values exceed ``threshold`` (named ``above``), and the
    summary of the others."""
    a = _values(values, "values")
    rest = a[a <= threshold]
    return {above: int((a > threshold).sum()), "n": int(a.size), "threshold": float(threshold),
            "rest": summary(rest) if rest.size else None}


def prediction_interval(values: Sequence[float], n_new: int | None = None,
                        confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Where the mean of ``n_new`` new seeds (default: as many as recorded) falls with 95 %
    probability, from the recorded per-seed values: mean +- t * sd * sqrt(1/n + 1/n_new)."""
    s = summary(values)
    n_new = s["n"] if n_new is None else int(n_new)
    half = _t(0.5 + confidence / 2, s["n"]) * s["sd"] * math.sqrt(1 / s["n"] + 1 / n_new)
    return s["mean"] - half, s["mean"] + half


def interval_text(d: dict, scale: float = 1.0, unit: str = "", digits: int = 1) -> str:
    """'-6.4 ± 1.3 [-12.0, -0.8]' for a paired() result (values times ``scale``)."""
    f = f"{{:+.{digits}f}}"
    return (f"{f.format(d['mean'] * scale)}{unit} ± {d['se'] * scale:.{digits}f} "
            f"[{f.format(d['low'] * scale)}, {f.format(d['high'] * scale)}]")
