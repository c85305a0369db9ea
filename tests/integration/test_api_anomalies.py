"""GET /api/v1/anomalies and POST /api/v1/anomalies/{id}/label against a real
PostgreSQL. Anomaly rows are written with SQL, as a score job would; the
list is filtered and paged newest first, and a label round-trips. Bad
input changes no row."""
import json
import uuid

import psycopg2
import pytest
import requests

from conftest import pg_query
from pipeline import MACHINE, add_machine, pipeline_env, start_api

MACHINE_2 = "c0000000-0000-0000-0000-000000000002"


def insert_anomaly(dsn, machine, ts, severity="warning", score=3.0, label=None):
    aid = str(uuid.uuid4())
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO anomalies (id, machine_id, ts, score, severity, detector, "
                    "energy_kwh, expected_kwh, features, model_version, label, labelled_at) "
                    "VALUES (%s, %s, %s, %s, %s, 'isolation_forest', 42.5, 20.0, %s, 3, %s, "
                    "CASE WHEN %s::text IS NULL THEN NULL ELSE now() END)",
                    (aid, machine, ts, score, severity,
                     json.dumps({"energy_kwh": {"z": 4.1}}), label, label))
    conn.close()
    return aid


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    add_machine(migrated_db, MACHINE_2, name="HVAC-Main", mtype="hvac")
    ids = {
        "a": insert_anomaly(migrated_db, MACHINE, "2026-03-01T05:00:00Z"),
        "b": insert_anomaly(migrated_db, MACHINE, "2026-03-02T05:00:00Z", "critical", 9.5),
        "c": insert_anomaly(migrated_db, MACHINE_2, "2026-03-03T05:00:00Z", label="confirmed"),
        "d": insert_anomaly(migrated_db, MACHINE, "2026-03-04T05:00:00Z", "critical", 7.0),
    }
    api = start_api(spawn, pipeline_env(migrated_db, redis_url))
    return {"base": api.base, "dsn": migrated_db, "ids": ids}


def listing(stack, **params):
    return requests.get(f"{stack['base']}/api/v1/anomalies", params=params, timeout=10)


def ids_of(r):
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()["anomalies"]]


def test_list_newest_first_with_fields(stack):
    ids = stack["ids"]
    r = listing(stack)
    assert ids_of(r) == [ids["d"], ids["c"], ids["b"], ids["a"]]
    body = r.json()
    assert (body["total"], body["limit"], body["offset"]) == (4, 100, 0)
    b = body["anomalies"][2]
    assert b["machine_id"] == MACHINE and b["machine_name"] == "Compressor-1"
    assert (b["score"], b["severity"], b["detector"]) == (9.5, "critical", "isolation_forest")
    assert (b["energy_kwh"], b["expected_kwh"], b["model_version"]) == (42.5, 20.0, 3)
    assert b["features"] == {"energy_kwh": {"z": 4.1}}
    assert b["label"] is None and b["ts"].startswith("2026-03-02T05:00:00")


def test_filters_and_paging(stack):
    ids = stack["ids"]
    assert ids_of(listing(stack, machine_id=MACHINE)) == [ids["d"], ids["b"], ids["a"]]
    assert ids_of(listing(stack, severity="critical")) == [ids["d"], ids["b"]]
    assert ids_of(listing(stack, label="confirmed")) == [ids["c"]]
    assert ids_of(listing(stack, label="unlabelled")) == [ids["d"], ids["b"], ids["a"]]
    assert ids_of(listing(stack, since="2026-03-02T05:00:00Z", until="2026-03-03T05:00:00Z")) \
        == [ids["c"], ids["b"]]
    r = listing(stack, limit=2, offset=1)
    assert ids_of(r) == [ids["c"], ids["b"]] and r.json()["total"] == 4
    assert ids_of(listing(stack, machine_id=MACHINE_2, severity="critical")) == []


@pytest.mark.parametrize("params,status,words", [
    ({"machine_id": "nope"}, 400, "machine_id"),
    ({"machine_id": str(uuid.uuid4())}, 404, "not found"),
    ({"severity": "fatal"}, 400, "severity"),
    ({"label": "maybe"}, 400, "label"),
    ({"limit": 0}, 400, "limit"),
    ({"limit": 1001}, 400, "limit"),
    ({"since": "2026-13-01"}, 400, "since"),
    ({"since": "2026-03-05T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, 400, "until"),
    ({"colour": "red"}, 400, "colour"),
])
def test_list_errors(stack, params, status, words):
    r = listing(stack, **params)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def label(stack, aid, body):
    return requests.post(f"{stack['base']}/api/v1/anomalies/{aid}/label", json=body, timeout=10)


def label_row(dsn, aid):
    return pg_query(dsn, "SELECT label, labelled_by, notes, labelled_at IS NOT NULL "
                         "FROM anomalies WHERE id = %s", (aid,))[0]


def test_label_round_trip(stack):
    aid = stack["ids"]["b"]
    r = label(stack, aid, {"label": "false_positive", "notes": "compressor test run",
                           "labelled_by": "energy.manager"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["id"], out["label"], out["labelled_by"], out["notes"]) == \
        (aid, "false_positive", "energy.manager", "compressor test run")
    assert out["labelled_at"] is not None
    assert label_row(stack["dsn"], aid) == ("false_positive", "energy.manager",
                                            "compressor test run", True)
    listed = [a for a in listing(stack).json()["anomalies"] if a["id"] == aid][0]
    assert listed["label"] == "false_positive"

    r = label(stack, aid, {"label": "confirmed"})
    assert r.status_code == 200 and r.json()["label"] == "confirmed"
    # notes absent: kept; labelled_by absent: "api"
    assert label_row(stack["dsn"], aid) == ("confirmed", "api", "compressor test run", True)

    r = label(stack, aid, {"label": None, "labelled_by": "someone"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] is None
    assert label_row(stack["dsn"], aid)[0] is None
    assert ids_of(listing(stack, label="unlabelled"))[0:3] == \
        [stack["ids"]["d"], stack["ids"]["b"], stack["ids"]["a"]]


@pytest.mark.parametrize("path_id,body,status,words", [
    (None, {"label": "real"}, 400, "label"),
    (None, {}, 400, "label: required"),
    (None, {"notes": "x"}, 400, "label: required"),
    (None, {"label": "confirmed", "colour": 1}, 400, "colour"),
    (None, {"label": "confirmed", "notes": "x" * 2001}, 400, "notes"),
    (None, {"label": 1}, 400, "label"),
    ("not-a-uuid", {"label": "confirmed"}, 400, "id"),
    (str(uuid.uuid4()), {"label": "confirmed"}, 404, "not found"),
])
def test_label_errors_change_nothing(stack, path_id, body, status, words):
    aid = path_id or stack["ids"]["a"]
    before = pg_query(stack["dsn"], "SELECT id, label, labelled_at, labelled_by, notes, "
                                    "updated_at FROM anomalies ORDER BY id")
    r = label(stack, aid, body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert pg_query(stack["dsn"], "SELECT id, label, labelled_at, labelled_by, notes, "
                                  "updated_at FROM anomalies ORDER BY id") == before


def test_item_paths(stack):
    aid = stack["ids"]["a"]
    r = requests.get(f"{stack['base']}/api/v1/anomalies/{aid}/label", timeout=10)
    assert r.status_code == 405
    r = requests.post(f"{stack['base']}/api/v1/anomalies/{aid}", json={}, timeout=10)
    assert r.status_code == 404
    r = requests.post(f"{stack['base']}/api/v1/anomalies/{aid}/other", json={}, timeout=10)
    assert r.status_code == 404
