"""GET /api/v1/events (Server-Sent Events from the Redis channel <p>:events)
against a real Redis: a triggered job's training.queued event arrives, the
job_id filter works, streams are capped, and an open stream does not keep the
API from stopping."""
import http.client
import json
import queue
import socket
import threading
import time
import urllib.parse
import uuid

import pytest
import requests

from pipeline import MACHINE, add_machine, pipeline_env, redis_client, start_api, trigger


class Stream:
    """An open event stream read on a thread of its own; next_event() returns
    (event name, data dict) as they arrive. http.client rather than requests,
    so that close() can shut the socket down under the blocked reader."""

    def __init__(self, base, params=None):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        target = "/api/v1/events" + ("?" + urllib.parse.urlencode(params) if params else "")
        self.conn.request("GET", target)
        self.resp = self.conn.getresponse()
        self.status_code = self.resp.status
        self.headers = self.resp.headers
        self.items = queue.Queue()
        self.connected = threading.Event()
        if self.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        name, data = None, []
        try:
            while True:
                raw = self.resp.readline()
                if not raw:
                    break
                line = raw.decode().rstrip("\n")
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and data:
                    self.items.put((name, json.loads("\n".join(data))))
                    name, data = None, []
        except Exception:  # noqa: BLE001 - close() shuts the socket under us; any error ends it
            pass
        self.items.put(None)

    def wait_connected(self, timeout=10):
        assert self.connected.wait(timeout), "stream did not connect"

    def next_event(self, timeout=10):
        item = self.items.get(timeout=timeout)
        assert item is not None, "stream ended"
        return item

    def close(self):
        try:
            if self.conn.sock:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


@pytest.fixture
def stack(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_SSE_MAX_STREAMS=2)
    api = start_api(spawn, env)
    return {"base": api.base, "api": api, "prefix": env["ENMS_REDIS_PREFIX"],
            "redis": redis_client(redis_url)}


def test_stream_delivers_the_queued_event(stack):
    s = Stream(stack["base"])
    try:
        assert s.status_code == 200
        assert s.headers["Content-Type"] == "text/event-stream"
        s.wait_connected()
        job_id = trigger(stack["base"], model_type="baseline").json()["training_job_id"]
        name, data = s.next_event()
        assert name == "training.queued"
        assert data["event"] == "training.queued"
        assert data["job_id"] == job_id and len(data["job_id"]) == 36
        assert data["status"] == "pending" and data["progress_pct"] == 0
        assert data["model_type"] == "baseline" and data["machine_id"] == MACHINE
        assert data["published_at"].endswith("Z")
        # Cancelling it is an event too.
        requests.post(f"{stack['base']}/api/v1/jobs/{job_id}/cancel", timeout=10)
        name, data = s.next_event()
        assert name == "training.cancelled" and data["job_id"] == job_id
    finally:
        s.close()


def test_job_id_filter(stack):
    wanted = str(uuid.uuid4())
    filtered = Stream(stack["base"], {"job_id": wanted})
    try:
        filtered.wait_connected()
        trigger(stack["base"], model_type="baseline")  # another job: filtered out
        # What a worker publishes for the wanted job, straight onto the channel.
        stack["redis"].publish(f"{stack['prefix']}:events", json.dumps(
            {"event": "training.progress", "job_id": wanted, "progress_pct": 50}))
        name, data = filtered.next_event()
        assert (name, data["job_id"], data["progress_pct"]) == ("training.progress", wanted, 50)
    finally:
        filtered.close()


def test_bad_filter_is_400(stack):
    r = requests.get(f"{stack['base']}/api/v1/events?job_id=nope", timeout=10)
    assert r.status_code == 400
    assert r.json()["detail"].startswith("job_id: must be a UUID")


def test_streams_are_capped(stack):
    streams = [Stream(stack["base"]) for _ in range(2)]
    try:
        for s in streams:
            s.wait_connected()
        r = requests.get(f"{stack['base']}/api/v1/events", timeout=10)
        assert r.status_code == 503
        assert r.json()["detail"].startswith("too many event streams")
        # Other endpoints still answer while the streams hold their threads.
        assert requests.get(f"{stack['base']}/healthz", timeout=10).status_code == 200
    finally:
        for s in streams:
            s.close()


def test_open_stream_does_not_block_shutdown(stack):
    s = Stream(stack["base"])
    try:
        s.wait_connected()
        started = time.monotonic()
        code = stack["api"].stop(timeout=10)
        assert time.monotonic() - started < 5, "API took too long to stop"
        assert code == 0
    finally:
        s.close()
