"""Open alerts: GET /api/v1/model-performance/alerts/active (filters, most
severe then newest first), POST /api/v1/alerts/{id}/acknowledge (stays open,
acknowledged_at set) and /resolve (leaves the list; a second resolve is a
409). Alerts are written with SQL, as the monitoring code would."""
import datetime as dt
import uuid

import psycopg2
import pytest
import requests

from conftest import pg_query
from pipeline import MACHINE, add_machine, pipeline_env, start_api

MACHINE_2 = "c0000000-0000-0000-0000-000000000002"
T0 = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)


def insert_alert(dsn, alert_type, severity, machine, model_type, hours, resolved=False):
    aid = str(uuid.uuid4())
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO model_alerts (id, alert_type, severity, machine_id, model_type, "
                    "alert_timestamp, alert_message, alert_details, is_resolved, resolved_at, "
                    "auto_action_taken, auto_action_type, auto_action_result) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, '{\"psi\": 0.31}', %s, %s, %s, %s, %s)",
                    (aid, alert_type, severity, machine, model_type,
                     T0 + dt.timedelta(hours=hours), f"{alert_type} on {model_type}", resolved,
                     T0 if resolved else None, alert_type == "drift_detected",
                     "auto_retrain" if alert_type == "drift_detected" else None,
                     "skipped: cooldown" if alert_type == "drift_detected" else None))
    conn.close()
    return aid


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    add_machine(migrated_db, MACHINE_2, name="HVAC-Main", mtype="hvac")
    dsn = migrated_db
    ids = {
        "w_old": insert_alert(dsn, "performance_degradation", "warning", MACHINE, "baseline", 1),
        "c_old": insert_alert(dsn, "training_failed", "critical", MACHINE, "anomaly", 2),
        "w_new": insert_alert(dsn, "drift_detected", "warning", MACHINE_2, "baseline", 5),
        "c_new": insert_alert(dsn, "anomaly_detected", "critical", MACHINE_2, "anomaly", 4),
        "n": insert_alert(dsn, "data_quality", "normal", MACHINE, "forecast_arima", 9),
        "done": insert_alert(dsn, "data_quality", "critical", MACHINE, "baseline", 10,
                             resolved=True),
    }
    api = start_api(spawn, pipeline_env(migrated_db, redis_url))
    return {"base": api.base, "dsn": dsn, "ids": ids}


def active(stack, **params):
    r = requests.get(f"{stack['base']}/api/v1/model-performance/alerts/active", params=params,
                     timeout=10)
    return r


def ids_of(r):
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()]


def test_order_and_fields(stack):
    ids = stack["ids"]
    r = active(stack)
    assert ids_of(r) == [ids["c_new"], ids["c_old"], ids["w_new"], ids["w_old"], ids["n"]]
    first = {a["id"]: a for a in r.json()}[ids["w_new"]]
    for field in ("id", "alert_type", "severity", "model_type", "machine_id", "machine_name",
                  "alert_message", "alert_timestamp", "is_resolved", "auto_action_taken",
                  "acknowledged_at", "acknowledged_by", "alert_details", "auto_action_type",
                  "auto_action_result"):
        assert field in first, field
    assert (first["alert_type"], first["severity"], first["machine_name"]) == \
        ("drift_detected", "warning", "HVAC-Main")
    assert first["is_resolved"] is False and first["auto_action_taken"] is True
    assert (first["auto_action_type"], first["auto_action_result"]) == \
        ("auto_retrain", "skipped: cooldown")
    assert first["alert_details"] == {"psi": 0.31} and first["acknowledged_at"] is None


def test_filters(stack):
    ids = stack["ids"]
    assert ids_of(active(stack, machine_id=MACHINE)) == [ids["c_old"], ids["w_old"], ids["n"]]
    assert ids_of(active(stack, model_type="anomaly")) == [ids["c_new"], ids["c_old"]]
    assert ids_of(active(stack, severity="warning")) == [ids["w_new"], ids["w_old"]]
    assert ids_of(active(stack, machine_id=MACHINE_2, model_type="baseline")) == [ids["w_new"]]
    assert ids_of(active(stack, alert_type="data_quality")) == [ids["n"]]
    assert ids_of(active(stack, limit=2)) == [ids["c_new"], ids["c_old"]]


@pytest.mark.parametrize("params,status,words", [
    ({"machine_id": "x"}, 400, "machine_id"),
    ({"machine_id": str(uuid.uuid4())}, 404, "not found"),
    ({"model_type": "neural"}, 400, "model_type"),
    ({"severity": "high"}, 400, "severity"),
    ({"limit": "-1"}, 400, "limit"),
    ({"foo": "1"}, 400, "foo"),
])
def test_list_errors(stack, params, status, words):
    r = active(stack, **params)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def act(stack, aid, action, body=None):
    return requests.post(f"{stack['base']}/api/v1/alerts/{aid}/{action}", json=body or {},
                         timeout=10)


def test_acknowledge_keeps_it_open(stack):
    aid = stack["ids"]["w_old"]
    r = act(stack, aid, "acknowledge", {"acknowledged_by": "ops.anna", "notes": "looking at the meter"})
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_by"] == "ops.anna" and r.json()["acknowledged_at"]
    assert r.json()["is_resolved"] is False
    listed = {a["id"]: a for a in active(stack).json()}
    assert listed[aid]["acknowledged_by"] == "ops.anna"
    assert listed[aid]["acknowledged_at"] is not None
    assert listed[aid]["alert_details"]["acknowledgement"]["notes"] == "looking at the meter"
    assert listed[aid]["alert_details"]["psi"] == 0.31
    assert pg_query(stack["dsn"], "SELECT is_resolved, acknowledged_by FROM model_alerts "
                                  "WHERE id = %s", (aid,)) == [(False, "ops.anna")]


def test_resolve_removes_it_and_twice_is_conflict(stack):
    aid = stack["ids"]["c_old"]
    r = act(stack, aid, "resolve", {"action": "retrained_model", "notes": "new version 4",
                                    "resolved_by": "ops.ben"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["is_resolved"] is True and out["resolution_action"] == "retrained_model"
    assert out["resolved_at"] is not None
    assert aid not in ids_of(active(stack))
    assert pg_query(stack["dsn"], "SELECT is_resolved, resolution_action, resolved_by, "
                                  "resolution_notes, resolved_at IS NOT NULL FROM model_alerts "
                                  "WHERE id = %s", (aid,)) == \
        [(True, "retrained_model", "ops.ben", "new version 4", True)]
    before = pg_query(stack["dsn"], "SELECT * FROM model_alerts ORDER BY id")
    r = act(stack, aid, "resolve", {"action": "false_positive"})
    assert r.status_code == 409 and "already resolved" in r.json()["detail"]
    r = act(stack, aid, "acknowledge")
    assert r.status_code == 409
    assert pg_query(stack["dsn"], "SELECT * FROM model_alerts ORDER BY id") == before


def test_resolve_default_action(stack):
    aid = stack["ids"]["n"]
    r = act(stack, aid, "resolve")
    assert r.status_code == 200, r.text
    assert (r.json()["resolution_action"], r.json()["resolved_by"]) == ("resolved", "api")


@pytest.mark.parametrize("aid,action,body,status,words", [
    ("nope", "resolve", {}, 400, "id"),
    (str(uuid.uuid4()), "resolve", {}, 404, "not found"),
    (str(uuid.uuid4()), "acknowledge", {}, 404, "not found"),
    (None, "resolve", {"action": "ignored"}, 400, "action"),
    (None, "resolve", {"action": "resolved", "bogus": 1}, 400, "bogus"),
    (None, "acknowledge", {"acknowledged_by": "x" * 201}, 400, "acknowledged_by"),
    (None, "acknowledge", {"notes": 5}, 400, "notes"),
    (None, "close", {}, 404, "no such endpoint"),
])
def test_change_errors_write_nothing(stack, aid, action, body, status, words):
    aid = aid or stack["ids"]["w_new"]
    before = pg_query(stack["dsn"], "SELECT * FROM model_alerts ORDER BY id")
    r = act(stack, aid, action, body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert pg_query(stack["dsn"], "SELECT * FROM model_alerts ORDER BY id") == before
