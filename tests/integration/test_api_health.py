"""enms-api liveness, readiness and static serving against real servers."""
import json
import os
import socket
import subprocess

import requests

from conftest import free_port, wait_http


def api_env(dsn, redis_url, port, **extra):
    env = {"ENMS_PG_DSN": dsn, "ENMS_REDIS_URL": redis_url, "ENMS_HTTP_PORT": str(port),
           "ENMS_CONNECT_TIMEOUT_MS": "1000", "ENMS_IO_TIMEOUT_MS": "1000"}
    env.update(extra)
    return env


def dead_port():
    # A port we bound and released: nothing listens there.
    return free_port()


def test_healthz_and_readyz_ok(spawn, migrated_db, redis_url):
    port = free_port()
    spawn("enms-api", api_env(migrated_db, redis_url, port))
    r = wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"status": "ok"}
    r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert r.status_code == 200
    assert r.json()["postgresql"] == "ok" and r.json()["redis"] == "ok"


def test_readyz_names_postgresql_when_it_is_down(spawn, redis_url):
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{dead_port()}/enms"
    spawn("enms-api", api_env(dsn, redis_url, port))
    assert wait_http(f"http://127.0.0.1:{port}/healthz", expect=200).status_code == 200
    r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail.startswith("postgresql unavailable"), detail
    assert "redis" not in detail


def test_readyz_names_redis_when_it_is_down(spawn, migrated_db):
    port = free_port()
    spawn("enms-api", api_env(migrated_db, f"redis://127.0.0.1:{dead_port()}/0", port))
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    assert r.status_code == 503
    assert r.json()["detail"].startswith("redis unavailable"), r.json()


def test_readyz_reports_unmigrated_schema(spawn, fresh_db, redis_url):
    port = free_port()
    spawn("enms-api", api_env(fresh_db, redis_url, port))
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    assert r.status_code == 503
    assert "schema not migrated" in r.json()["detail"]


def test_readyz_recovers_after_redis_returns(spawn, migrated_db, tmp_path):
    """A dependency that comes back is used again without restarting the API."""
    rport = free_port()
    port = free_port()
    spawn("enms-api", api_env(migrated_db, f"redis://127.0.0.1:{rport}/0", port))
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 503
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", expect=200, timeout=10)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    r = wait_http(f"http://127.0.0.1:{port}/readyz", expect=503, timeout=10)
    assert r.json()["detail"].startswith("redis unavailable")


def test_unknown_api_path_is_json_404(spawn, migrated_db, redis_url):
    port = free_port()
    spawn("enms-api", api_env(migrated_db, redis_url, port))
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    r = requests.get(f"http://127.0.0.1:{port}/api/v1/nothing-here", timeout=5)
    assert r.status_code == 404
    assert "no such endpoint" in r.json()["detail"]
    r = requests.post(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert r.status_code == 405 and r.json()["detail"]


def test_dashboard_served_and_traversal_refused(spawn, migrated_db, redis_url):
    port = free_port()
    spawn("enms-api", api_env(migrated_db, redis_url, port))
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert r.status_code == 200 and "<html" in r.text.lower()
    # A raw request, so the client does not normalise the dots away.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert b"root:" not in data
    assert data.split(b"\r\n", 1)[0].split()[1] in (b"400", b"403", b"404")


def test_public_bind_without_token_is_refused(bin_dir, migrated_db, redis_url):
    env = dict(os.environ)
    env.update(api_env(migrated_db, redis_url, free_port(), ENMS_HTTP_ADDR="0.0.0.0"))
    proc = subprocess.run([os.path.join(bin_dir, "enms-api")], env=env, capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 2
    assert "ENMS_API_TOKEN" in proc.stderr


def test_bad_configuration_is_a_clear_error(bin_dir):
    env = dict(os.environ, ENMS_HTTP_PORT="eighty")
    for binary in ("enms-api", "enms-worker", "enmsctl"):
        args = [os.path.join(bin_dir, binary)] + (["migrate"] if binary == "enmsctl" else [])
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=20)
        assert proc.returncode == 2, binary
        # enms-api logs it as a JSON line; the message is the same text.
        text = proc.stderr + "".join(json.loads(line)["msg"] for line in proc.stderr.splitlines()
                                     if line.startswith("{"))
        assert 'ENMS_HTTP_PORT: "eighty" is not an integer' in text, proc.stderr
