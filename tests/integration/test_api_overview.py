"""The dashboard's summaries, served by the seed system's views:
GET /api/v1/model-performance/latest (v_latest_model_performance) and
GET /api/v1/model-performance/ab-tests (v_active_ab_tests, or tests in
another state)."""
import uuid

import psycopg2
import pytest
import requests

from pipeline import MACHINE, add_machine, pipeline_env, start_api

MACHINE_2 = "c0000000-0000-0000-0000-000000000002"


def execute(dsn, sql, params=None):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE, name="Compressor-1")
    add_machine(migrated_db, MACHINE_2, name="HVAC-Main", mtype="hvac")
    api = start_api(spawn, pipeline_env(migrated_db, redis_url))
    return {"base": api.base, "dsn": migrated_db}


def test_latest_is_the_newest_evaluation_per_machine_and_type(stack):
    execute(stack["dsn"], """
        INSERT INTO model_performance_metrics (model_type, machine_id, evaluation_date, r_squared,
                                               mape, sample_count) VALUES
          ('baseline', %(a)s, now() - interval '2 days', 0.91, NULL, 300),
          ('baseline', %(a)s, now() - interval '1 day', 0.0, NULL, 310),
          ('forecast_arima', %(a)s, now() - interval '3 days', NULL, 7.5, 168),
          ('baseline', %(b)s, now() - interval '5 days', 0.8, NULL, 200)""",
            {"a": MACHINE, "b": MACHINE_2})
    r = requests.get(f"{stack['base']}/api/v1/model-performance/latest", timeout=10)
    assert r.status_code == 200, r.text
    rows = r.json()["latest"]
    assert [(x["machine_name"], x["model_type"]) for x in rows] == [
        ("Compressor-1", "baseline"), ("Compressor-1", "forecast_arima"), ("HVAC-Main", "baseline")]
    # The newest baseline evaluation of Compressor-1 had R² 0.0: it stays 0.0, not null.
    assert rows[0]["r_squared"] == 0.0 and rows[0]["sample_count"] == 310
    assert rows[1]["mape"] == 7.5 and rows[1]["machine_type"] == "compressor"

    r = requests.get(f"{stack['base']}/api/v1/model-performance/latest",
                     params={"machine_id": MACHINE, "model_type": "forecast_arima"}, timeout=10)
    assert [x["mape"] for x in r.json()["latest"]] == [7.5]
    r = requests.get(f"{stack['base']}/api/v1/model-performance/latest",
                     params={"machine_id": "nope"}, timeout=10)
    assert r.status_code == 400 and r.json()["detail"].startswith("machine_id: must be a UUID")
    r = requests.get(f"{stack['base']}/api/v1/model-performance/latest",
                     params={"model_type": "linear"}, timeout=10)
    assert r.status_code == 400 and r.json()["detail"].startswith("model_type:")
    r = requests.post(f"{stack['base']}/api/v1/model-performance/latest", timeout=10)
    assert r.status_code == 405


def test_ab_tests_lists_running_tests_with_their_age_or_another_state(stack):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    execute(stack["dsn"], """
        INSERT INTO model_ab_tests (test_name, model_type, machine_id, model_a_id, model_b_id,
                                    test_start, test_end, test_status) VALUES
          ('old', 'baseline', %(m)s, %(a)s, %(b)s, now() - interval '10 days',
           now() - interval '9 days', 'completed'),
          ('live', 'baseline', %(m)s, %(a)s, %(b)s, now() - interval '3 hours',
           now() + interval '21 hours', 'running'),
          ('other', 'forecast_arima', %(n)s, %(a)s, %(b)s, now() - interval '1 hour',
           now() + interval '1 hour', 'running')""",
            {"m": MACHINE, "n": MACHINE_2, "a": a, "b": b})
    base = f"{stack['base']}/api/v1/model-performance/ab-tests"
    tests = requests.get(base, timeout=10).json()["tests"]
    assert [t["test_name"] for t in tests] == ["live", "other"]
    assert 2.9 < tests[0]["hours_running"] < 3.1 and 20.9 < tests[0]["hours_remaining"] < 21.1
    assert tests[0]["machine_name"] == "Compressor-1"

    only = requests.get(base, params={"model_type": "forecast_arima"}, timeout=10).json()["tests"]
    assert [t["test_name"] for t in only] == ["other"]
    done = requests.get(base, params={"status": "completed"}, timeout=10).json()["tests"]
    assert [(t["test_name"], t["test_status"]) for t in done] == [("old", "completed")]
    limited = requests.get(base, params={"limit": 1}, timeout=10).json()["tests"]
    assert len(limited) == 1
    for bad, field in (({"status": "done"}, "status"), ({"limit": 0}, "limit"),
                       ({"machine_id": "x"}, "machine_id"), ({"colour": "red"}, "colour")):
        r = requests.get(base, params=bad, timeout=10)
        assert r.status_code == 400 and r.json()["detail"].startswith(field + ":"), r.text
