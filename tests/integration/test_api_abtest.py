"""A/B test endpoints (issue 5): start, results, decide, and expiry.

Paired samples are written with SQL (as the evaluation jobs would) and the
paired test's outcome is checked against values known independently of our
code: the Wilcoxon example of R's ?wilcox.test help page (V = 40, exact
two-sided p = 20/512), its extension by one larger difference (V = 50,
p = 20/1024, counted by hand: 10 subsets of 1..10 sum to 5 or less), an
all-one-sided series of 30 distinct differences (exact p = 2 / 2^30), and
Diebold-Mariano values printed by R's forecast::dm.test 8.20 (h = 24,
power = 2) on the error series built in dm_errors(). The last test is
acceptance 3 end to end: real training, real evaluation jobs."""
import datetime as dt
import json
import math
import time
import uuid

import psycopg2
import pytest
import requests

from conftest import pg_query, run_ctl
from pipeline import MACHINE, add_machine, pipeline_env, start_api, start_worker, trigger, \
    wait_status

MACHINE_2 = "c0000000-0000-0000-0000-000000000002"
AB = "/api/v1/model-performance/ab-test"


def insert_version(dsn, machine_id, model_type, version, active=False):
    vid = str(uuid.uuid4())
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO model_versions (id, machine_id, model_type, version, artifact, "
                    "is_active, activated_at) VALUES (%s, %s, %s, %s, '{}', %s, "
                    "CASE WHEN %s THEN now() END)",
                    (vid, machine_id, model_type, version, active, active))
    conn.close()
    return vid


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    add_machine(migrated_db, MACHINE_2, name="HVAC-Main", mtype="hvac")
    ids = {
        "b1": insert_version(migrated_db, MACHINE, "baseline", 1, active=True),
        "b2": insert_version(migrated_db, MACHINE, "baseline", 2),
        "b3": insert_version(migrated_db, MACHINE, "baseline", 3),
        "a1": insert_version(migrated_db, MACHINE, "anomaly", 1),
        "a2": insert_version(migrated_db, MACHINE, "anomaly", 2),
        "f1": insert_version(migrated_db, MACHINE, "forecast_arima", 1),
        "f2": insert_version(migrated_db, MACHINE, "forecast_arima", 2),
        "m2b1": insert_version(migrated_db, MACHINE_2, "baseline", 1),
    }
    api = start_api(spawn, pipeline_env(migrated_db, redis_url))
    return {"base": api.base, "dsn": migrated_db, "ids": ids}


def start(stack, query=None, **body):
    if query is not None:
        return requests.post(f"{stack['base']}{AB}/start", params=query, timeout=10)
    return requests.post(f"{stack['base']}{AB}/start", json=body, timeout=10)


def start_body(stack, model_type="baseline", a="b1", b="b2", **extra):
    ids = stack["ids"]
    body = {"test_name": f"{model_type} {a} vs {b}", "model_type": model_type,
            "machine_id": MACHINE, "model_a_id": ids.get(a, a), "model_b_id": ids.get(b, b)}
    body.update(extra)
    return body


def started(stack, **kw):
    r = start(stack, **start_body(stack, **kw))
    assert r.status_code == 201, r.text
    return r.json()["test_id"]


def results(stack, test_id):
    return requests.get(f"{stack['base']}{AB}/{test_id}/results", timeout=10)


def decide(stack, test_id, **body):
    return requests.post(f"{stack['base']}{AB}/{test_id}/decide", json=body, timeout=10)


def snapshot(dsn):
    """Everything an A/B request may write."""
    return (pg_query(dsn, "SELECT id, test_status, decision, winner_model_id, paired_samples, "
                     "results::text FROM model_ab_tests ORDER BY id"),
            pg_query(dsn, "SELECT count(*) FROM model_ab_test_samples"),
            pg_query(dsn, "SELECT id, is_active FROM model_versions ORDER BY id"))


def insert_samples(dsn, test_id, loss_a, loss_b, t0=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for i, (la, lb) in enumerate(zip(loss_a, loss_b)):
            cur.execute("INSERT INTO model_ab_test_samples (test_id, sample_ts, loss_a, loss_b) "
                        "VALUES (%s, %s, %s, %s)", (test_id, t0 + dt.timedelta(hours=i), la, lb))
    conn.close()


def active_of(dsn, model_type, machine_id=MACHINE):
    return [r[0] for r in pg_query(dsn, "SELECT id::text FROM model_versions WHERE machine_id = %s "
                                   "AND model_type = %s AND is_active", (machine_id, model_type))]


# --- start -----------------------------------------------------------------

def test_start_json_body(stack):
    ids = stack["ids"]
    r = start(stack, **start_body(stack, duration_hours=48, traffic_split=0.3,
                                  confidence_level=0.9))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "running" and uuid.UUID(out["test_id"])
    assert (out["model_a_id"], out["model_b_id"]) == (ids["b1"], ids["b2"])
    assert (out["model_a_version"], out["model_b_version"]) == (1, 2)
    assert out["traffic_split_a"] == 0.3 and out["traffic_split_b"] == pytest.approx(0.7)
    assert out["confidence_level"] == 0.9 and out["message"]
    t0 = dt.datetime.fromisoformat(out["test_start"].replace("Z", "+00:00"))
    t1 = dt.datetime.fromisoformat(out["test_end"].replace("Z", "+00:00"))
    assert t1 - t0 == dt.timedelta(hours=48)
    (row,) = pg_query(stack["dsn"], "SELECT test_status, model_a_version, model_b_version, "
                      "traffic_split_a, traffic_split_b, confidence_level, test_end - test_start "
                      "FROM model_ab_tests WHERE id = %s", (out["test_id"],))
    assert row[:6] == ("running", 1, 2, 0.3, pytest.approx(0.7), 0.9)
    assert row[6] == dt.timedelta(hours=48)


def test_start_query_string_defaults(stack):
    """Old clients send query parameters; defaults: 24 h, split 0.5, confidence 0.95."""
    ids = stack["ids"]
    r = start(stack, query={"test_name": "old client", "model_type": "forecast_arima",
                            "machine_id": MACHINE, "model_a_id": ids["f1"],
                            "model_b_id": ids["f2"].upper()})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["model_b_id"] == ids["f2"]
    assert (out["traffic_split_a"], out["traffic_split_b"], out["confidence_level"],
            out["duration_hours"]) == (0.5, 0.5, 0.95, 24)
    r = start(stack, query={"test_name": "split_a", "model_type": "anomaly", "machine_id": MACHINE,
                            "model_a_id": ids["a1"], "model_b_id": ids["a2"],
                            "traffic_split_a": "0.25", "duration_hours": "1.5"})
    assert r.status_code == 201, r.text
    assert r.json()["traffic_split_b"] == 0.75 and r.json()["duration_hours"] == 1.5


BAD_STARTS = [
    ({"machine_id": "not-a-uuid"}, 400, "machine_id"),
    ({"model_a_id": "1234"}, 400, "model_a_id"),
    ({"model_type": "probe"}, 400, "model_type"),
    ({"model_type": "neural"}, 400, "model_type"),
    ({"test_name": ""}, 400, "test_name"),
    ({"test_name": "x" * 201}, 400, "test_name"),
    ({"colour": "red"}, 400, "colour"),
    ({"model_a_id": str(uuid.uuid4())}, 404, "model_a_id"),
    ({"model_b_id": str(uuid.uuid4())}, 404, "model_b_id"),
    ({"machine_id": str(uuid.uuid4())}, 404, "machine_id"),
    ({"model_b_id": "m2b1"}, 400, "model_b_id"),   # another machine's version
    ({"model_b_id": "a1"}, 400, "model_b_id"),     # another model type
    ({"model_b_id": "b1"}, 400, "model_b_id"),     # the same version twice
    ({"traffic_split": 0}, 400, "traffic_split"),
    ({"traffic_split": 1}, 400, "traffic_split"),
    ({"traffic_split": 1.5}, 400, "traffic_split"),
    ({"traffic_split": -0.1}, 400, "traffic_split"),
    ({"traffic_split": "NaN"}, 400, "traffic_split"),
    ({"traffic_split": "0x1p-1"}, 400, "traffic_split"),
    ({"traffic_split": True}, 400, "traffic_split"),
    ({"traffic_split": 0.4, "traffic_split_a": 0.4}, 400, "traffic_split"),
    ({"duration_hours": 0}, 400, "duration_hours"),
    ({"duration_hours": -5}, 400, "duration_hours"),
    ({"duration_hours": 2161}, 400, "duration_hours"),
    ({"duration_hours": "inf"}, 400, "duration_hours"),
    ({"duration_hours": "24h"}, 400, "duration_hours"),
    ({"confidence_level": 1}, 400, "confidence_level"),
    ({"confidence_level": 0.3}, 400, "confidence_level"),
    ({"confidence_level": "nan"}, 400, "confidence_level"),
]


@pytest.mark.parametrize("change, status, field", BAD_STARTS)
def test_start_rejects(stack, change, status, field):
    before = snapshot(stack["dsn"])
    body = start_body(stack)
    for k, v in change.items():
        body[k] = stack["ids"].get(v, v) if isinstance(v, str) else v
    r = start(stack, **body)
    assert r.status_code == status, r.text
    assert r.json()["detail"].startswith(field), r.json()
    assert snapshot(stack["dsn"]) == before


def test_start_rejects_missing_fields_and_nan_literal(stack):
    before = snapshot(stack["dsn"])
    for field in ("test_name", "model_type", "machine_id", "model_a_id", "model_b_id"):
        body = start_body(stack)
        del body[field]
        r = start(stack, **body)
        assert r.status_code == 400 and r.json()["detail"] == f"{field}: required"
    # A NaN literal is not JSON; as query text it is refused too.
    text = json.dumps(start_body(stack, traffic_split=float("nan")))
    assert "NaN" in text
    r = requests.post(f"{stack['base']}{AB}/start", data=text,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400
    q = {k: v for k, v in start_body(stack).items()}
    q["confidence_level"] = "NaN"
    r = start(stack, query=q)
    assert r.status_code == 400 and r.json()["detail"].startswith("confidence_level")
    r = requests.get(f"{stack['base']}{AB}/start", timeout=10)
    assert r.status_code == 405
    assert snapshot(stack["dsn"]) == before


def test_one_running_test_per_machine_and_type(stack):
    first = started(stack)
    before = snapshot(stack["dsn"])
    r = start(stack, **start_body(stack, a="b2", b="b3"))
    assert r.status_code == 409, r.text
    assert r.json()["existing_test_id"] == first and "already running" in r.json()["detail"]
    assert snapshot(stack["dsn"]) == before
    # Another model type of the same machine, and the same type elsewhere, are free.
    started(stack, model_type="anomaly", a="a1", b="a2")
    # Once the first is decided, a new test of that machine and type may start.
    assert decide(stack, first, decision="no_winner").status_code == 200
    started(stack, a="b2", b="b3")


# --- results ---------------------------------------------------------------

R_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
R_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_results_errors(stack):
    r = results(stack, uuid.uuid4())
    assert r.status_code == 404
    r = results(stack, "12345")
    assert r.status_code == 400 and r.json()["detail"].startswith("test_id")
    tid = started(stack)
    r = requests.get(f"{stack['base']}{AB}/{tid}/results", params={"x": "1"}, timeout=10)
    assert r.status_code == 400 and r.json()["detail"].startswith("x")
    r = requests.post(f"{stack['base']}{AB}/{tid}/results", timeout=10)
    assert r.status_code == 405
    r = requests.get(f"{stack['base']}{AB}/{tid}/decide", timeout=10)
    assert r.status_code == 405
    r = requests.get(f"{stack['base']}{AB}/{tid}/other", timeout=10)
    assert r.status_code == 404


def test_results_without_samples(stack):
    tid = started(stack)
    r = results(stack, tid)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["paired_samples"] == 0 and out["winner"] == "no_winner"
    assert out["p_value"] is None and out["winner_model_id"] is None
    assert out["test"] == "wilcoxon_signed_rank" and "No paired samples" in out["recommendation"]


def test_wilcoxon_r_example_and_minimum_samples(stack):
    """R's example: V = 40, two-sided p = 0.0390625 < 0.05, but 9 < 10 samples: no winner.
    One more pair (a worse by 2.0) gives V = 50, p = 0.01953125: b wins."""
    dsn = stack["dsn"]
    tid = started(stack)
    insert_samples(dsn, tid, R_X, R_Y)
    out = results(stack, tid).json()
    assert out["paired_samples"] == 9 and out["min_paired_samples"] == 10
    assert out["statistic"] == 40 and out["p_value"] == pytest.approx(0.0390625, abs=1e-12)
    assert out["winner"] == "no_winner" and out["winner_model_id"] is None
    assert "at least 10" in out["recommendation"]

    insert_samples(dsn, tid, [3.0], [1.0], t0=dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc))
    out = results(stack, tid).json()
    assert out["statistic"] == 50 and out["p_value"] == pytest.approx(0.01953125, abs=1e-12)
    assert out["confidence"] == pytest.approx(1 - 0.01953125)
    assert out["winner"] == "model_b" and out["winner_model_id"] == stack["ids"]["b2"]
    assert out["winner_version"] == 2 and "promote_b" in out["recommendation"]
    xa, xb = R_X + [3.0], R_Y + [1.0]
    ma, mb = out["model_a_metrics"], out["model_b_metrics"]
    assert ma["n"] == 10 and ma["mae"] == pytest.approx(sum(xa) / 10)
    assert ma["rmse"] == pytest.approx(math.sqrt(sum(v * v for v in xa) / 10))
    assert mb["mae"] == pytest.approx(sum(xb) / 10)
    # Persisted into the test's row; still running (winner not declared before the end).
    (row,) = pg_query(dsn, "SELECT paired_samples, test_method, statistical_significance, "
                      "results->>'winner', model_a_metrics->>'mae', test_status, winner_model_id "
                      "FROM model_ab_tests WHERE id = %s", (tid,))
    assert row[:4] == (10, "wilcoxon_signed_rank", pytest.approx(0.01953125), "model_b")
    assert float(row[4]) == pytest.approx(sum(xa) / 10)
    assert row[5:] == ("running", None)


def test_clear_margin_and_identical_losses(stack):
    """a better on every one of 30 distinct differences: exact p = 2/2^30, a wins.
    Identical losses: p = 1, no winner."""
    dsn = stack["dsn"]
    tid = started(stack, model_type="anomaly", a="a1", b="a2")
    la = [0.1 * (i % 7) for i in range(30)]
    lb = [a + 0.5 + 0.01 * i for i, a in enumerate(la)]
    insert_samples(dsn, tid, la, lb)
    out = results(stack, tid).json()
    assert out["test"] == "wilcoxon_signed_rank" and out["loss"] == "zero_one"
    assert out["statistic"] == 0 and out["p_value"] == pytest.approx(2 / 2 ** 30, rel=1e-9)
    assert out["winner"] == "model_a" and out["winner_model_id"] == stack["ids"]["a1"]
    assert out["model_a_metrics"]["error_rate"] == pytest.approx(sum(la) / 30)

    tid = started(stack, a="b2", b="b3")
    insert_samples(dsn, tid, la, la)
    out = results(stack, tid).json()
    assert out["paired_samples"] == 30 and out["p_value"] == 1
    assert out["winner"] == "no_winner" and out["winner_model_id"] is None
    assert "No significant difference" in out["recommendation"]


def dm_errors(s):
    """Error series given to R: ea, and eb = ea + s * (second Weyl sequence)."""
    n = 72
    w = lambda k, off: [((i * k + off) % 1) - 0.5 for i in range(n)]
    ea = [2 * v for v in w(0.6180339887, 0.1)]
    eb = [a + s * 2 * v for a, v in zip(ea, w(0.4142135623, 0.3))]
    return ea, eb


def sines():
    ea = [math.sin(i * 0.7) + 0.3 * math.cos(i * 1.3) for i in range(72)]
    eb = [1.4 * math.sin(i * 0.7 + 0.2) + 0.5 * math.cos(i * 2.1) for i in range(72)]
    return ea, eb


@pytest.mark.parametrize("series, statistic, p_value, winner", [
    # dm.test(ea, eb, h = 24, power = 2): long-run variance over 23 lags.
    (sines(), -6.916438812100707, 1.6703746936882897e-09, "model_a"),
    # Negative 24-lag variance: dm.test (and we) fall back to h = 1.
    (dm_errors(0.2), -2.2201759915212445, 0.029600386584572574, "model_a"),
    (dm_errors(0.05), -1.5996460429377701, 0.11411796153370206, "no_winner"),
])
def test_diebold_mariano_matches_r(stack, series, statistic, p_value, winner):
    dsn = stack["dsn"]
    tid = started(stack, model_type="forecast_arima", a="f1", b="f2")
    ea, eb = series
    insert_samples(dsn, tid, [e * e for e in ea], [e * e for e in eb])
    out = results(stack, tid).json()
    assert out["test"] == "diebold_mariano" and out["loss"] == "squared_error"
    assert out["paired_samples"] == 72 and out["min_paired_samples"] == 48
    assert out["statistic"] == pytest.approx(statistic, rel=1e-6)
    assert out["p_value"] == pytest.approx(p_value, rel=1e-6)
    assert out["winner"] == winner
    assert out["model_a_metrics"]["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in ea) / 72))
    assert out["model_a_metrics"]["mae"] == pytest.approx(sum(abs(e) for e in ea) / 72)


def test_confidence_level_moves_the_bar(stack):
    """p = 0.0296 wins at 0.95 but not at 0.99."""
    dsn = stack["dsn"]
    tid = started(stack, model_type="forecast_arima", a="f1", b="f2", confidence_level=0.99)
    ea, eb = dm_errors(0.2)
    insert_samples(dsn, tid, [e * e for e in ea], [e * e for e in eb])
    out = results(stack, tid).json()
    assert out["p_value"] == pytest.approx(0.029600386584572574, rel=1e-6)
    assert out["confidence_level"] == 0.99 and out["winner"] == "no_winner"


# --- decide ----------------------------------------------------------------

def test_decide_promotes_and_second_decide_conflicts(stack):
    dsn, ids = stack["dsn"], stack["ids"]
    tid = started(stack)
    insert_samples(dsn, tid, R_X + [3.0], R_Y + [1.0])
    assert active_of(dsn, "baseline") == [ids["b1"]]
    before = snapshot(dsn)
    for body in ({"decision": "promote_c"}, {}, {"decision": "promote_b", "notes": "n" * 2001},
                 {"decision": "promote_b", "why": "x"}):
        r = decide(stack, tid, **body)
        assert r.status_code == 400, (body, r.text)
    assert decide(stack, uuid.uuid4(), decision="promote_b").status_code == 404
    assert decide(stack, "nope", decision="promote_b").status_code == 400
    assert snapshot(dsn) == before

    r = decide(stack, tid, decision="promote_b", notes="b is better", decided_by="alice")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "completed" and out["decision"] == "promote_b"
    assert out["decided_by"] == "alice" and out["decision_notes"] == "b is better"
    assert out["winner"] == "model_b" and out["declared_winner_model_id"] == ids["b2"]
    assert active_of(dsn, "baseline") == [ids["b2"]]
    (row,) = pg_query(dsn, "SELECT test_status, decision, decided_at IS NOT NULL, "
                      "winner_model_id::text, winner_declared_at IS NOT NULL, test_end <= now() "
                      "FROM model_ab_tests WHERE id = %s", (tid,))
    assert row == ("completed", "promote_b", True, ids["b2"], True, True)

    before = snapshot(dsn)
    r = decide(stack, tid, decision="promote_a")
    assert r.status_code == 409 and "already decided" in r.json()["detail"]
    assert snapshot(dsn) == before
    assert active_of(dsn, "baseline") == [ids["b2"]]


def test_decide_no_winner_changes_no_version(stack):
    dsn, ids = stack["dsn"], stack["ids"]
    tid = started(stack)
    r = decide(stack, tid, decision="no_winner")
    assert r.status_code == 200 and r.json()["declared_winner_model_id"] is None
    assert active_of(dsn, "baseline") == [ids["b1"]]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE model_ab_tests SET test_status = 'cancelled', decision = NULL "
                    "WHERE id = %s", (tid,))
    conn.close()
    assert decide(stack, tid, decision="promote_a").status_code == 409
    assert active_of(dsn, "baseline") == [ids["b1"]]


# --- expiry ----------------------------------------------------------------

def test_expired_test_completes_via_results(stack):
    """A test past its end completes on the next results request; the winner is
    recorded but not activated; it can still be decided once."""
    dsn, ids = stack["dsn"], stack["ids"]
    tid = started(stack, duration_hours=0.001)
    insert_samples(dsn, tid, R_X + [3.0], R_Y + [1.0])
    time.sleep(4)
    out = results(stack, tid).json()
    assert out["status"] == "completed" and out["winner"] == "model_b"
    (row,) = pg_query(dsn, "SELECT test_status, winner_model_id::text, decision, paired_samples "
                      "FROM model_ab_tests WHERE id = %s", (tid,))
    assert row == ("completed", ids["b2"], None, 10)
    assert active_of(dsn, "baseline") == [ids["b1"]]
    # A new test may start, and the completed one may still be decided (once).
    started(stack, a="b2", b="b3")
    assert decide(stack, tid, decision="promote_b").status_code == 200
    assert active_of(dsn, "baseline") == [ids["b2"]]
    assert decide(stack, tid, decision="promote_b").status_code == 409


def test_expired_test_completes_via_housekeeping(stack, redis_url, spawn):
    """A worker's housekeeping (every second here) ends the test without any request."""
    dsn, ids = stack["dsn"], stack["ids"]
    tid = started(stack, model_type="anomaly", a="a1", b="a2", duration_hours=0.001)
    la = [0.1 * (i % 7) for i in range(30)]
    insert_samples(dsn, tid, la, [a + 0.5 + 0.01 * i for i, a in enumerate(la)])
    start_worker(spawn, pipeline_env(dsn, redis_url), "w-hk")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = pg_query(dsn, "SELECT test_status FROM model_ab_tests WHERE id = %s", (tid,))[0]
        if row[0] != "running":
            break
        time.sleep(0.5)
    (row,) = pg_query(dsn, "SELECT test_status, winner_model_id::text, test_method, "
                      "statistical_significance FROM model_ab_tests WHERE id = %s", (tid,))
    assert row == ("completed", ids["a1"], "wilcoxon_signed_rank", pytest.approx(2 / 2 ** 30))
    assert active_of(dsn, "anomaly") == []


def test_expired_test_completes_with_one_enmsctl_housekeeping_pass(stack, redis_url, bin_dir):
    """An operator's `enmsctl housekeeping` ends tests past their end too."""
    dsn, ids = stack["dsn"], stack["ids"]
    tid = started(stack, model_type="anomaly", a="a1", b="a2", duration_hours=0.001)
    time.sleep(4)
    assert pg_query(dsn, "SELECT test_status FROM model_ab_tests WHERE id = %s", (tid,)) == \
        [("running",)]
    proc = run_ctl(bin_dir, dsn, "housekeeping", env_extra=pipeline_env(dsn, redis_url))
    assert proc.returncode == 0, proc.stderr
    (row,) = pg_query(dsn, "SELECT test_status, winner_model_id FROM model_ab_tests "
                      "WHERE id = %s", (tid,))
    assert row == ("completed", None)  # no samples: no winner
    assert active_of(dsn, "anomaly") == []


# --- acceptance 3 end to end -------------------------------------------------

HVAC = MACHINE_2


def test_acceptance_good_version_beats_short_window(migrated_db, redis_url, bin_dir, spawn):
    """Baselines trained up to 2025-10-01 on 365 days (good) and on 35 days
    (worse); the test runs while an evaluation job scores both on the newest
    60 days the active version has not seen: the 365-day version wins with
    p < 0.05. Two versions trained identically give no_winner (a version
    never evaluated is activated first, so that its evaluation has new days)."""
    dsn = migrated_db
    run_ctl(bin_dir, dsn, "seed", "--end", "2026-01-01", check=True)
    env = pipeline_env(dsn, redis_url)
    api = start_api(spawn, env)
    base = api.base
    start_worker(spawn, env, "w-ab")

    def train(days):
        r = trigger(base, "baseline", HVAC, params={"days": days, "until": "2025-10-01T00:00:00Z"})
        assert r.status_code == 202, r.text
        job = r.json()["training_job_id"]
        wait_status(dsn, job, "completed", timeout=300)
        (vid,) = pg_query(dsn, "SELECT result_version_id::text FROM model_training_history "
                          "WHERE id = %s", (job,))[0]
        return vid

    good, bad = train(365), train(35)
    same_1, same_2 = train(365), train(365)

    def run_test(a, b, active):
        r = requests.post(f"{base}/api/v1/models/{active}/activate", timeout=10)
        assert r.status_code == 200, r.text
        r = requests.post(f"{base}{AB}/start", json={
            "test_name": "acceptance", "model_type": "baseline", "machine_id": HVAC,
            "model_a_id": a, "model_b_id": b, "duration_hours": 1}, timeout=10)
        assert r.status_code == 201, r.text
        tid = r.json()["test_id"]
        r = requests.post(f"{base}/api/v1/evaluate", json={"machine_id": HVAC,
                                                          "model_type": "baseline", "days": 60},
                          timeout=10)
        assert r.status_code == 202, r.text
        (job,) = [j["job_id"] for j in r.json()["jobs"]]
        wait_status(dsn, job, "completed", timeout=300)
        out = requests.get(f"{base}{AB}/{tid}/results", timeout=10).json()
        r = requests.post(f"{base}{AB}/{tid}/decide", json={"decision": "manual_review"},
                          timeout=10)
        assert r.status_code == 200, r.text
        return out

    out = run_test(bad, good, active=good)
    print("acceptance good vs bad:", json.dumps(out))
    assert out["paired_samples"] >= 10, out
    assert out["winner"] == "model_b" and out["winner_model_id"] == good, out
    assert out["p_value"] < 0.05
    assert out["model_b_metrics"]["mae"] < out["model_a_metrics"]["mae"]

    out = run_test(same_1, same_2, active=same_1)
    print("acceptance identical:", json.dumps(out))
    assert out["paired_samples"] >= 10, out
    assert out["winner"] == "no_winner", out
