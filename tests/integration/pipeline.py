"""Helpers for tests of the job pipeline (API, workers, housekeeping).

Tests create jobs through the real API where they can (`trigger`), and read
state from PostgreSQL (the record) and Redis (live state) directly."""
import json
import os
import time
import uuid

import psycopg2
import redis as redis_lib
import requests

from conftest import free_port, run_ctl, wait_http

MACHINE = "c0000000-0000-0000-0000-000000000001"


def add_machine(dsn, machine_id=None, name=None, mtype="compressor"):
    machine_id = machine_id or str(uuid.uuid4())
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO machines (id, name, type, location, rated_power_kw) "
                    "VALUES (%s, %s, %s, 'test', 50) ON CONFLICT (id) DO NOTHING",
                    (machine_id, name or f"m-{machine_id[:8]}", mtype))
    conn.close()
    return machine_id


def pipeline_env(dsn, redis_url, **extra):
    """Fast timings so recovery paths run in seconds, not minutes, and a Redis
    prefix of the test's own, so tests sharing the Redis server never see each
    other's keys (env["ENMS_REDIS_PREFIX"])."""
    prefix = "{t" + uuid.uuid4().hex[:10] + "}"
    env = {"ENMS_PG_DSN": dsn, "ENMS_REDIS_URL": redis_url, "ENMS_ENABLE_PROBE": "1",
           "ENMS_REDIS_PREFIX": prefix,
           "ENMS_HEARTBEAT_INTERVAL_S": "1", "ENMS_HEARTBEAT_TTL_S": "3",
           "ENMS_HOUSEKEEPING_INTERVAL_S": "1", "ENMS_REDISPATCH_GRACE_S": "2",
           "ENMS_SHUTDOWN_GRACE_S": "5", "ENMS_CONNECT_TIMEOUT_MS": "1000",
           # Schedules off: a test that wants evaluation, scoring or scheduled
           # retrains turns its own on.
           "ENMS_EVAL_INTERVAL_S": "0", "ENMS_SCORE_INTERVAL_S": "0",
           "ENMS_RETRAIN_BASELINE_S": "0", "ENMS_RETRAIN_ANOMALY_S": "0",
           "ENMS_RETRAIN_FORECAST_S": "0"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_api(spawn, env):
    port = free_port()
    api = spawn("enms-api", dict(env, ENMS_HTTP_PORT=str(port)))
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    api.base = f"http://127.0.0.1:{port}"
    return api


def start_worker(spawn, env, worker_id):
    return spawn("enms-worker", dict(env, ENMS_WORKER_ID=worker_id))


def trigger(base, model_type="probe", machine_id=MACHINE, params=None, **fields):
    body = {"model_type": model_type, "machine_id": machine_id, "reason": "test"}
    if params is not None:
        body["params"] = params
    body.update(fields)
    return requests.post(f"{base}/api/v1/model-performance/retrain/trigger", json=body, timeout=10)


def job_row(dsn, job_id):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT training_status, attempts, worker_id, error_message, progress "
                    "FROM model_training_history WHERE id = %s", (job_id,))
        row = cur.fetchone()
    conn.close()
    if row is None:
        return None
    return dict(zip(("status", "attempts", "worker_id", "error_message", "progress"), row))


def wait_status(dsn, job_id, statuses, timeout=30.0):
    """Waits until the job's status is one of statuses; returns its row."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = job_row(dsn, job_id)
        if row and row["status"] in statuses:
            return row
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not {statuses} within {timeout}s: {row}")


def wait_for(predicate, timeout, what):
    """Polls predicate every 50 ms; returns its first true value, or fails
    naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout}s")


def events_of(dsn, job_id):
    """The job's status history from job_events: [(from, to, attempt, worker), ...]."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT from_status, to_status, attempt, worker_id FROM job_events "
                    "WHERE job_id = %s ORDER BY id", (job_id,))
        rows = cur.fetchall()
    conn.close()
    return rows


def redis_client(redis_url):
    return redis_lib.Redis.from_url(redis_url.replace("localhost", "127.0.0.1"),
                                    decode_responses=True)


def processing_lists(r, prefix):
    return {k: r.lrange(k, 0, -1) for k in r.scan_iter(f"{prefix}:processing:*")}
