"""Model version endpoints against a real PostgreSQL: versions are written
with SQL (as a worker would), then listed, filtered, read one by one and
activated; activating an older version is the rollback, and exactly one
version per machine and model type is active afterwards."""
import datetime as dt
import json
import uuid

import psycopg2
import pytest
import requests

from conftest import pg_query
from pipeline import MACHINE, add_machine, pipeline_env, start_api

MACHINE_2 = "c0000000-0000-0000-0000-000000000002"


def insert_version(dsn, machine_id, model_type, version, created_at, active=False, **extra):
    vid = str(uuid.uuid4())
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO model_versions (id, machine_id, model_type, version, created_at, "
                    "artifact, metrics, is_active, activated_at, notes) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (vid, machine_id, model_type, version, created_at,
                     json.dumps(extra.get("artifact", {"kind": model_type, "v": version})),
                     json.dumps({"cv_rmse": 5.0 + version}), active,
                     created_at if active else None, extra.get("notes")))
    conn.close()
    return vid


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    add_machine(migrated_db, MACHINE_2, name="HVAC-Main", mtype="hvac")
    t0 = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)
    ids = {
        "b1": insert_version(migrated_db, MACHINE, "baseline", 1, t0),
        "b2": insert_version(migrated_db, MACHINE, "baseline", 2, t0 + dt.timedelta(days=1),
                             active=True, notes="better CV(RMSE)"),
        "a1": insert_version(migrated_db, MACHINE, "anomaly", 1, t0 + dt.timedelta(days=2),
                             active=True),
        "f1": insert_version(migrated_db, MACHINE_2, "forecast_arima", 1,
                             t0 + dt.timedelta(days=3)),
    }
    api = start_api(spawn, pipeline_env(migrated_db, redis_url))
    return {"base": api.base, "dsn": migrated_db, "ids": ids}


def get(stack, path, **params):
    return requests.get(f"{stack['base']}{path}", params=params, timeout=10)


def test_list_newest_first_and_filters(stack):
    ids = stack["ids"]
    r = get(stack, "/api/v1/models")
    assert r.status_code == 200, r.text
    models = r.json()["models"]
    assert [m["id"] for m in models] == [ids["f1"], ids["a1"], ids["b2"], ids["b1"]]
    first = models[2]
    assert set(first) == {"id", "machine_id", "model_type", "version", "created_at", "is_active",
                          "activated_at", "training_job_id", "metrics", "notes"}
    assert (first["machine_id"], first["model_type"], first["version"], first["is_active"]) == \
        (MACHINE, "baseline", 2, True)
    assert first["metrics"] == {"cv_rmse": 7.0}
    assert first["notes"] == "better CV(RMSE)" and first["training_job_id"] is None
    assert first["activated_at"] is not None and models[3]["activated_at"] is None

    r = get(stack, "/api/v1/models", machine_id=MACHINE, model_type="baseline")
    assert [m["id"] for m in r.json()["models"]] == [ids["b2"], ids["b1"]]
    r = get(stack, "/api/v1/models", machine_id=MACHINE.upper())
    assert [m["id"] for m in r.json()["models"]] == [ids["a1"], ids["b2"], ids["b1"]]
    r = get(stack, "/api/v1/models", model_type="forecast_arima")
    assert [m["id"] for m in r.json()["models"]] == [ids["f1"]]
    r = get(stack, "/api/v1/models", machine_id=str(uuid.uuid4()))
    assert r.status_code == 200 and r.json() == {"models": []}
    r = get(stack, "/api/v1/models", limit=2)
    assert len(r.json()["models"]) == 2


@pytest.mark.parametrize("params, field", [
    ({"machine_id": "not-a-uuid"}, "machine_id"),
    ({"model_type": "neural"}, "model_type"),
    ({"limit": "0"}, "limit"),
    ({"colour": "red"}, "colour"),
])
def test_list_rejects_bad_filters(stack, params, field):
    r = get(stack, "/api/v1/models", **params)
    assert r.status_code == 400
    assert r.json()["detail"].startswith(field)


def test_get_one_with_artifact(stack):
    ids = stack["ids"]
    r = get(stack, f"/api/v1/models/{ids['b1']}")
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["id"] == ids["b1"] and m["version"] == 1 and m["is_active"] is False
    assert m["artifact"] == {"kind": "baseline", "v": 1}
    r = get(stack, f"/api/v1/models/{uuid.uuid4()}")
    assert r.status_code == 404
    r = get(stack, "/api/v1/models/12345")
    assert r.status_code == 400 and r.json()["detail"].startswith("id")
    r = get(stack, f"/api/v1/models/{ids['b1']}/nothing")
    assert r.status_code == 404
    r = requests.delete(f"{stack['base']}/api/v1/models/{ids['b1']}", timeout=10)
    assert r.status_code == 405


def active_of(dsn, machine_id, model_type):
    return [r[0] for r in pg_query(dsn, "SELECT id::text FROM model_versions WHERE machine_id = %s "
                                   "AND model_type = %s AND is_active", (machine_id, model_type))]


def test_activate_older_is_rollback(stack):
    ids, dsn, base = stack["ids"], stack["dsn"], stack["base"]
    r = requests.post(f"{base}/api/v1/models/{ids['b1']}/activate", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": ids["b1"], "version": 1, "is_active": True,
                        "previous_active_id": ids["b2"]}
    assert active_of(dsn, MACHINE, "baseline") == [ids["b1"]]
    # Other machines and model types are untouched.
    assert active_of(dsn, MACHINE, "anomaly") == [ids["a1"]]
    (activated,) = pg_query(dsn, "SELECT activated_at IS NOT NULL FROM model_versions "
                            "WHERE id = %s", (ids["b1"],))[0]
    assert activated

    # Forward again, then activating the active one changes nothing.
    r = requests.post(f"{base}/api/v1/models/{ids['b2']}/activate", timeout=10)
    assert r.json()["previous_active_id"] == ids["b1"]
    r = requests.post(f"{base}/api/v1/models/{ids['b2']}/activate", timeout=10)
    assert r.status_code == 200 and r.json()["previous_active_id"] == ids["b2"]
    assert active_of(dsn, MACHINE, "baseline") == [ids["b2"]]

    # First activation of a type with none active.
    r = requests.post(f"{base}/api/v1/models/{ids['f1']}/activate", timeout=10)
    assert r.status_code == 200 and r.json()["previous_active_id"] is None
    assert active_of(dsn, MACHINE_2, "forecast_arima") == [ids["f1"]]


def test_activate_errors(stack):
    base = stack["base"]
    r = requests.post(f"{base}/api/v1/models/{uuid.uuid4()}/activate", timeout=10)
    assert r.status_code == 404
    r = requests.post(f"{base}/api/v1/models/xyz/activate", timeout=10)
    assert r.status_code == 400
    r = requests.get(f"{base}/api/v1/models/{stack['ids']['b1']}/activate", timeout=10)
    assert r.status_code == 405
    assert active_of(stack["dsn"], MACHINE, "baseline") == [stack["ids"]["b2"]]


def test_concurrent_activations_leave_one_active(stack):
    from concurrent.futures import ThreadPoolExecutor
    ids, base = stack["ids"], stack["base"]

    def act(vid):
        return requests.post(f"{base}/api/v1/models/{vid}/activate", timeout=10).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(act, [ids["b1"], ids["b2"]] * 10))
    assert codes == [200] * 20
    assert len(active_of(stack["dsn"], MACHINE, "baseline")) == 1
