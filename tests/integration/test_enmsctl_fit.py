"""enmsctl fit: the ARIMA, baseline and anomaly models fitted to CSV files
outside the queue, checked against the reference values of R and gretl in
../shared/reference/models.md, and every option's validation (exit 2)."""
import datetime as dt
import json
import math
import os
import random

import pytest

from conftest import ROOT, run_ctl


def shared_dir():
    for d in (os.path.join(ROOT, "..", "shared"), "/work/shared"):
        if os.path.isdir(os.path.join(d, "reference", "data")):
            return os.path.abspath(d)
    pytest.fail("shared/reference not found (looked in ROOT/../shared and /work/shared)")


def ref(name):
    return os.path.join(shared_dir(), "reference", "data", name)


def fit(bin_dir, *args):
    return run_ctl(bin_dir, os.environ.get("ENMS_PG_DSN", ""), "fit", *args)


def fit_json(bin_dir, *args):
    proc = fit(bin_dir, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def coefs(model):
    return {c["name"]: c["value"] for c in model["coefficients"]}


def test_airline_model_matches_r(bin_dir):
    out = fit_json(bin_dir, "--model", "forecast_arima", "--csv", ref("airpassengers.csv"),
                   "--period", "12", "--log", "--order", "0,1,1", "--seasonal", "0,1,1")
    m = out["model"]
    assert (m["order"], m["seasonal"], m["period"]) == ([0, 1, 1], [0, 1, 1], 12)
    c = coefs(m)
    assert list(c) == ["ma1", "sma1"]
    assert c["ma1"] == pytest.approx(-0.401828, abs=1e-3)
    assert c["sma1"] == pytest.approx(-0.556945, abs=1e-3)
    assert m["sigma2"] == pytest.approx(0.00134803, rel=1e-3)
    assert m["loglik"] == pytest.approx(244.699531, abs=1e-3)
    assert m["aic"] == pytest.approx(-483.399061, abs=2e-3)
    assert out["selection"] is None and out["scale"] == "log"
    assert (out["n"], out["missing"]) == (144, 0)
    fc = out["forecasts"]
    assert len(fc) == 24  # default horizon 2 m
    f1 = fc[0]
    assert f1["h"] == 1
    assert f1["mean"] == pytest.approx(6.110186, abs=1e-3)
    assert f1["lo95"] == pytest.approx(6.038224, abs=1e-3)
    assert f1["hi95"] == pytest.approx(6.182147, abs=1e-3)
    assert f1["lo80"] == pytest.approx(6.063133, abs=1e-3)
    assert f1["hi80"] == pytest.approx(6.157239, abs=1e-3)
    assert fc[11]["mean"] == pytest.approx(6.168025, abs=1e-3)


def test_auto_arima_on_wwwusage(bin_dir):
    out = fit_json(bin_dir, "--model", "forecast_arima", "--csv", ref("wwwusage.csv"),
                   "--horizon", "5")
    m = out["model"]
    assert (m["order"], m["seasonal"]) == ([1, 1, 1], [0, 0, 0])
    assert m["include_drift"] is False
    assert m["aicc"] <= 514.552103 + 1e-3
    assert out["selection"]["d"] == 1
    assert [f["h"] for f in out["forecasts"]] == [1, 2, 3, 4, 5]
    for f in out["forecasts"]:
        assert f["lo95"] < f["lo80"] < f["mean"] < f["hi80"] < f["hi95"]


def test_repeat_times_the_fit_and_gives_the_same_model(bin_dir):
    args = ("--model", "forecast_arima", "--csv", ref("wwwusage.csv"), "--horizon", "2")
    once = fit_json(bin_dir, *args)
    many = fit_json(bin_dir, *args, "--repeat", "5")
    # The fit is deterministic: five in a row end with the same model; both
    # runs report the CPU time of their fitting.
    assert many["model"] == once["model"] and many["forecasts"] == once["forecasts"]
    assert 0 < once["fit_cpu_seconds"] < 5
    assert 0 < many["fit_cpu_seconds"] < 5


def test_missing_values_and_named_column(bin_dir, tmp_path):
    src = open(ref("lh.csv")).read().split("\n")[1:]
    values = [v for v in src if v.strip()]
    lines = ["t,load"] + [f"{i},{'NA' if i == 5 else ('' if i == 9 else v)}"
                          for i, v in enumerate(values)]
    path = tmp_path / "lh_gaps.csv"
    path.write_text("\n".join(lines) + "\n")
    out = fit_json(bin_dir, "--model", "forecast_arima", "--csv", str(path), "--column", "load",
                   "--order", "1,0,0")
    assert (out["n"], out["missing"]) == (len(values), 2)
    c = coefs(out["model"])
    assert set(c) == {"ar1", "intercept"}
    assert c["ar1"] == pytest.approx(0.574, abs=0.1)
    out = fit_json(bin_dir, "--model", "forecast_arima", "--csv", str(path), "--column", "load",
                   "--order", "1,0,0", "--no-mean")
    assert set(coefs(out["model"])) == {"ar1"}


def test_baseline_ols_matches_gretl(bin_dir):
    out = fit_json(bin_dir, "--model", "baseline", "--csv",
                   os.path.join(ROOT, "tests", "data", "ramanathan_data9-3.csv"),
                   "--y", "reskwh", "--x", "nocust,hdd,cdd")
    names = [c["name"] for c in out["coefficients"]]
    assert names == ["intercept", "nocust", "hdd", "cdd"]
    want = [-124.5352361, 1.3057724, 0.3747224, 0.2786745]
    for c, w in zip(out["coefficients"], want):
        assert c["value"] == pytest.approx(w, abs=1e-6)
        assert c["se"] > 0
    assert out["r2"] == pytest.approx(0.9567086, abs=1e-6)
    assert out["cv_rmse"] == pytest.approx(4.779899, abs=1e-5)
    assert out["adj_r2"] < out["r2"]
    assert abs(out["nmbe"]) < 1e-8
    assert (out["n"], out["p"]) == (87, 4)


def synthetic_load(path, spikes):
    """60 days of hourly load with a working-hours profile, noise and labelled spikes."""
    rnd = random.Random(7)
    start = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    rows = ["ts,energy_kwh,outdoor_temp_c,label"]
    for i in range(60 * 24):
        t = start + dt.timedelta(hours=i)
        busy = 8 <= t.hour < 18 and t.weekday() < 5
        e = 50 + 30 * busy + rnd.gauss(0, 2)
        if i in spikes:
            e *= 4
        rows.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{e:.3f},{10 + 5 * math.sin(i / 24):.2f},"
                    f"{int(i in spikes)}")
    path.write_text("\n".join(rows) + "\n")
    return [(start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in spikes]


def test_anomaly_flags_injected_spikes(bin_dir, tmp_path):
    path = tmp_path / "load.csv"
    spike_ts = synthetic_load(path, {200, 700, 1200})
    out = fit_json(bin_dir, "--model", "anomaly", "--csv", str(path))
    assert out["labelled"] is True and out["n"] == 1440
    dets = {d["detector"]: d for d in out["detectors"]}
    assert set(dets) == {"iforest", "residual"}
    best = dets[out["default_detector"]]
    assert best["recall"] == 1.0
    assert best["f1"] >= 0.8
    for d in dets.values():
        assert 0 < d["anomaly_rate"] < 0.05
    flagged = [r for r in out["flagged"] if r["detector"] == out["default_detector"]]
    assert {r["ts"] for r in flagged} >= set(spike_ts)
    for r in flagged:
        assert r["severity"] in ("warning", "critical")
        assert r["score"] > 0 and r["value"] > 0
    # Without labels: rates only.
    text = path.read_text().splitlines()
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("\n".join(",".join(line.split(",")[:3]) for line in text) + "\n")
    out = fit_json(bin_dir, "--model", "anomaly", "--csv", str(nolabel))
    assert out["labelled"] is False
    assert all(d["precision"] is None and d["anomaly_rate"] > 0 for d in out["detectors"])


@pytest.mark.parametrize("args, message", [
    (["--csv", "X"], "--model is required"),
    (["--model", "arima", "--csv", "X"], "unknown model"),
    (["--model", "forecast_arima"], "--csv FILE is required"),
    (["--model", "forecast_arima", "--csv", "/nonexistent.csv"], "No such file"),
    (["--model", "forecast_arima", "--csv", "AIR", "--period", "0"], "--period"),
    (["--model", "forecast_arima", "--csv", "AIR", "--period", "12x"], "--period"),
    (["--model", "forecast_arima", "--csv", "AIR", "--horizon", "-1"], "--horizon"),
    (["--model", "forecast_arima", "--csv", "AIR", "--order", "1,1"], "--order"),
    (["--model", "forecast_arima", "--csv", "AIR", "--order", "1,a,1"], "--order"),
    (["--model", "forecast_arima", "--csv", "AIR", "--seasonal", "0,1,1"], "needs --order"),
    (["--model", "forecast_arima", "--csv", "AIR", "--order", "0,1,1", "--seasonal", "0,1,1"],
     "--period"),
    (["--model", "forecast_arima", "--csv", "AIR", "--column", "nope"], "no column"),
    (["--model", "forecast_arima", "--csv", "AIR", "--bogus"], "unknown option"),
    (["--model", "forecast_arima", "--csv", "AIR", "--period"], "needs a value"),
    (["--model", "baseline", "--csv", "AIR", "--y", "y"], "--x"),
    (["--model", "baseline", "--csv", "AIR", "--y", "nope", "--x", "y"], "no column"),
    (["--model", "baseline", "--csv", "AIR", "--y", "y", "--x", "y"], "used twice"),
    (["--model", "baseline", "--csv", "AIR", "--log"], "forecast_arima"),
    (["--model", "anomaly", "--csv", "AIR"], "ts and energy_kwh"),
    (["--model", "anomaly", "--csv", "AIR", "--contamination", "2"], "--contamination"),
    (["--model", "forecast_arima", "--csv", "AIR", "--repeat", "0"], "--repeat"),
    (["--model", "forecast_arima", "--csv", "AIR", "--repeat", "1001"], "--repeat"),
    (["--model", "baseline", "--csv", "AIR", "--y", "y", "--x", "y", "--repeat", "2"],
     "forecast_arima"),
])
def test_bad_options_exit_2(bin_dir, args, message):
    args = [ref("airpassengers.csv") if a == "AIR" else a for a in args]
    proc = fit(bin_dir, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert proc.stdout == ""


def test_bad_files_exit_2(bin_dir, tmp_path):
    cases = {
        "short.csv": ("y\n1\n2\n3\n", "insufficient data: 3 observations, need 10"),
        "word.csv": ("y\n1\n2\nabc\n", 'line 4, column y: "abc" is not a number'),
        "empty.csv": ("", "empty file"),
        "ragged.csv": ("a,b\n1,2\n3\n", "line 3: expected 2 fields, found 1"),
        "neg.csv": ("y\n" + "\n".join(str(i - 5) for i in range(40)) + "\n", "positive"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        extra = ["--log"] if name == "neg.csv" else []
        proc = fit(bin_dir, "--model", "forecast_arima", "--csv", str(path), *extra)
        assert proc.returncode == 2, (name, proc.stderr)
        assert message in proc.stderr, (name, proc.stderr)
    bad_ts = tmp_path / "ts.csv"
    bad_ts.write_text("ts,energy_kwh\n2026-01-01T00:00Z,1\nyesterday,2\n")
    proc = fit(bin_dir, "--model", "anomaly", "--csv", str(bad_ts))
    assert proc.returncode == 2 and "line 3, column ts" in proc.stderr
    few = tmp_path / "few.csv"
    few.write_text("ts,energy_kwh\n2026-01-01T00:00Z,1\n2026-01-01T01:00Z,2\n")
    proc = fit(bin_dir, "--model", "anomaly", "--csv", str(few))
    assert proc.returncode == 2 and "insufficient data" in proc.stderr
    few = tmp_path / "few_rows.csv"
    few.write_text("y,x\n1,2\n2,3\n")
    proc = fit(bin_dir, "--model", "baseline", "--csv", str(few), "--y", "y", "--x", "x")
    assert proc.returncode == 2 and "insufficient data: 2 complete rows, need 4" in proc.stderr


def test_row_bound(bin_dir, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("y\n" + "1\n" * 200001)
    proc = fit(bin_dir, "--model", "forecast_arima", "--csv", str(path))
    assert proc.returncode == 2 and "more than 200000 rows" in proc.stderr
