"""`nightshift backtest` on the tiny dataset (whose March drifts by design): five retraining policies over
the same days, from the CLI, with their table, chart and figures.

Each policy does what it says (never: only the first champion; nightly: a candidate every day; weekly:
when the champion is a week old; drift: only when drift holds, at most twice within the cooldown), the
gates decide each candidate, and retraining on drift serves better than never retraining once March
has drifted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nightshift.settings import Settings
from tests.conftest import ROOT, tiny_env

START, END = "2013-02-15", "2013-03-31"  # the first champion on the first day; March drifts by design


def test_five_policies_on_the_same_days(settings: Settings, tmp_path: Path) -> None:
    out, figures = tmp_path / "backtest", tmp_path / "backtest.json"
    proc = subprocess.run([sys.executable, "-m", "ops.cli", "--dataset", "tiny", "backtest", START, END,
                           "--out", str(out), "--json", str(figures)], cwd=ROOT,
                          env={**os.environ, **tiny_env(settings.home)}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]

    daily = pd.read_csv(out / "backtest.csv", parse_dates=["data_date"])
    by = {name: g.reset_index(drop=True) for name, g in daily.groupby("policy")}
    assert sorted(by) == ["drift", "drift_weekly", "never", "nightly", "weekly"]
    days = pd.date_range(START, END)
    for g in by.values():
        assert list(g["data_date"]) == list(days)
        # The same first champion everywhere: trained on the first day, serving from the second.
        assert g.loc[0, "trigger"] == "first" and g.loc[0, "promoted"] == 1 and pd.isna(g.loc[0, "served_auc"])
        assert g["served_auc"][1:].notna().all()
    assert by["never"]["trained"].sum() == 1
    assert (by["nightly"]["trained"] == 1).all()  # a candidate every night
    # Weekly: a candidate once the champion is 7 data days old (again the next day when it was rejected).
    weekly = by["weekly"]
    champion_since = days[0]
    for _, r in weekly.iloc[1:].iterrows():
        assert r["trained"] == int((r["data_date"] - champion_since).days >= 7), r
        if r["promoted"]:
            champion_since = r["data_date"]
    # Drift: trains only when drift holds, never twice within the 7-day cooldown, and catches March.
    drift = by["drift"]
    retrains = drift[drift["trigger"] == "drift"]
    assert (drift["trigger"].isin(["first", "drift", ""]) | drift["trigger"].isna()).all()
    assert retrains["retrain_on_drift"].all() and len(retrains) >= 1
    for day in retrains["data_date"]:  # the cooldown; severe performance drift overrides it once
        assert retrains["data_date"].between(day, day + pd.Timedelta(days=6)).sum() <= 2
    assert (retrains["data_date"] >= pd.Timestamp("2013-03-01")).any()
    assert not drift[drift["data_date"] < pd.Timestamp("2013-02-21")]["retrain_on_drift"].any()
    march = daily[daily["data_date"] >= pd.Timestamp("2013-03-15")].groupby("policy")["served_auc"].mean()
    assert march["drift"] > march["never"] + 0.05 and march["nightly"] > march["never"] + 0.05

    # Strict JSON: a figure a policy does not have is null, never NaN.
    found = json.loads(figures.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in backtest.json"))
    for key in ("drift_alarm_day_share", "drift_vs_nightly_auc", "drift_vs_nightly_retrain_share",
                "worst_month_drift_vs_never"):
        assert isinstance(found[key], float), key
    summary = {r["policy"]: r for r in found["summary"]}
    assert summary["never"]["retrains"] == 1 and summary["nightly"]["retrains"] == len(days)
    assert summary["never"]["data_drift_day_share"] is None
    assert found["drift_vs_nightly_retrain_share"] == round(summary["drift"]["retrains"] / len(days), 4)
    table = (out / "backtest.md").read_text()
    assert "| drift_weekly |" in table and "### Mean served AUC by month" in table and "| 2013-03 |" in table
    assert (out / "backtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
