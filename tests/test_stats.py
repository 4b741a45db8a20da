"""utils.stats and utils.record on known answers."""
import math

import numpy as np
import pytest
from scipy import stats as st

from utils.record import compare, load_record, same_design, verdict
from utils.stats import detectable, paired, prediction_interval, split, summary


def test_summary_matches_numpy():
    s = summary([1.0, 2.0, 4.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(7 / 3)
    assert s["sd"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert s["se"] == pytest.approx(s["sd"] / math.sqrt(3))
    assert math.isnan(summary([5.0])["sd"])


def test_paired_interval_equals_scipy_ttest():
    a, b = [0.46, 0.59, 0.69], [0.55, 0.66, 0.73]   # the extra's committed FactorVAE, beta 4 vs 1
    d = paired(a, b)
    res = st.ttest_rel(a, b)
    ci = res.confidence_interval(0.95)
    assert d["low"] == pytest.approx(ci.low) and d["high"] == pytest.approx(ci.high)
    assert d["effect"] == (res.pvalue < 0.05)
    assert d["differences"] == pytest.approx([-0.09, -0.07, -0.04])


def test_effect_only_where_the_interval_excludes_zero():
    assert paired([1.0, 2.0, 3.0], [0.9, 2.2, 2.9])["effect"] is False
    d = paired([1.1, 2.1, 3.1, 4.1], [1.0, 2.0, 3.0, 4.0 - 1e-3])
    assert d["effect"] and d["low"] > 0


def test_paired_is_not_the_unpaired_rule():
    """A shared seed effect (large spread) hides nothing from the paired difference."""
    base = [10.0, 50.0, 90.0]
    assert paired([b + 1.0 + e for b, e in zip(base, (0.1, -0.1, 0.0))], base)["effect"]


def test_detectable_difference_known_answer():
    # n = 3, sd 1: (t_.975,2 + t_.80,2) / sqrt(3) = (4.3027 + 1.0607) / 1.7321
    assert detectable(1.0, 3) == pytest.approx((4.302653 + 1.060660) / math.sqrt(3), rel=1e-5)
    assert detectable(2.0, 5) == pytest.approx(2 * detectable(1.0, 5))


def test_split_counts_a_bimodal_outcome():
    s = split([0.30, 0.81, 0.24], threshold=0.5)
    assert s["collapsed"] == 1 and s["n"] == 3 and s["rest"]["mean"] == pytest.approx(0.27)


def test_prediction_interval_known_answer():
    low, high = prediction_interval([1.0, 2.0, 3.0])
    half = st.t.ppf(0.975, 2) * 1.0 * math.sqrt(2 / 3)
    assert (low, high) == pytest.approx((2 - half, 2 + half))


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="one value per seed"):
        paired([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        summary([1.0, float("nan")])


def test_compare_judges_lists_by_interval_and_numbers_by_tolerance(capsys):
    rows = compare({"acc": [0.70, 0.69, 0.69], "nll": 103.7, "old": 1.0},
                   {"acc": [0.80, 0.81, 0.79], "nll": 103.71, "new": 2.0}, tolerance={"nll": 0.1})
    got = {r["name"]: r["verdict"] for r in rows}
    assert got == {"acc": "OUTSIDE", "nll": "inside", "new": "not in the record"}
    line = verdict(rows, "q1_metrics.json")
    assert "OUTSIDE" in line and "acc" in line and "Not in the record: new" in line
    assert "inside" in verdict(compare({"x": 1.0}, {"x": 1.0}, {"x": 0.0}), "r")
    with pytest.raises(ValueError, match="tolerance"):
        compare({"x": 1.0}, {"x": 1.0}, {})


def test_load_record(tmp_path):
    assert load_record("missing.json", tmp_path) is None
    (tmp_path / "r.json").write_text('{"a": 1}')
    assert load_record("r.json", tmp_path) == {"a": 1}


def test_same_design_compares_as_json():
    assert same_design({"mode": "cpu", "config": {"betas": [1, 4]}}, "cpu", {"betas": (1, 4)})
    assert not same_design({"mode": "cpu", "config": {"betas": [1, 4]}}, "full", {"betas": (1, 4)})
    assert not same_design(None, "cpu", {})
