"""enms-worker registration and heartbeat in a real Redis."""
import time

import redis as redis_lib

from conftest import free_port


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except redis_lib.ConnectionError:
            value = None  # the server is still starting
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_worker_registers_beats_and_withdraws(spawn, migrated_db, redis_url):
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    wid = "test-worker-reg"
    worker = spawn("enms-worker", {"ENMS_PG_DSN": migrated_db, "ENMS_WORKER_ID": wid,
                                   "ENMS_HEARTBEAT_INTERVAL_S": "1", "ENMS_HEARTBEAT_TTL_S": "4"})
    wait_until(lambda: r.sismember("{enms}:workers", wid))
    info = r.hgetall(f"{{enms}}:worker:{wid}")
    assert info["pid"] == str(worker.proc.pid)
    assert info["state"] == "idle"
    assert 0 < r.ttl(f"{{enms}}:worker:{wid}") <= 4
    first_beat = int(info["last_beat"])
    # The heartbeat renews the hash: last_beat moves on and the TTL never lapses.
    wait_until(lambda: int(r.hget(f"{{enms}}:worker:{wid}", "last_beat") or 0) > first_beat,
               timeout=5)
    assert worker.stop() == 0
    assert not r.sismember("{enms}:workers", wid)
    assert not r.exists(f"{{enms}}:worker:{wid}")


def test_worker_survives_redis_outage(spawn, migrated_db, tmp_path):
    import subprocess
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    wid = "test-worker-outage"
    worker = spawn("enms-worker", {"ENMS_PG_DSN": migrated_db, "ENMS_REDIS_URL": url,
                                   "ENMS_WORKER_ID": wid, "ENMS_HEARTBEAT_INTERVAL_S": "1",
                                   "ENMS_HEARTBEAT_TTL_S": "4",
                                   "ENMS_CONNECT_TIMEOUT_MS": "500"})
    time.sleep(1.5)
    assert worker.proc.poll() is None, worker.output()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL)
    try:
        r = redis_lib.Redis(host="127.0.0.1", port=port, decode_responses=True)
        wait_until(lambda: r.sismember("{enms}:workers", wid), timeout=40)
    finally:
        assert worker.stop() == 0
        server.terminate()
        server.wait(timeout=10)
    assert "retrying" in worker.output()
