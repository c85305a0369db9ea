"""The API's edge (issue 7, acceptance 3 and 5) against real servers: the
public-bind refusal, the bearer token, body and nesting limits, security
headers, request ids, the request timeout, and JSON logs that carry the
access log but never the token."""
import json
import os
import re
import socket
import subprocess
import time

import pytest
import requests

from conftest import TEST_API_TOKEN, free_port, log_records, pg_query, wait_http
from pipeline import MACHINE, add_machine, pipeline_env

TRIGGER = "/api/v1/model-performance/retrain/trigger"
AUTH = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


@pytest.fixture(scope="module")
def api(module_spawn, module_db, redis_url):
    """One API with a token, listening on every address (allowed because a
    token is set), logging at info so the access log is written."""
    add_machine(module_db, MACHINE, name="Compressor-1")
    port = free_port()
    env = pipeline_env(module_db, redis_url, ENMS_HTTP_ADDR="0.0.0.0", ENMS_HTTP_PORT=port,
                       ENMS_API_TOKEN=TEST_API_TOKEN, ENMS_LOG_LEVEL="info",
                       ENMS_HTTP_TIMEOUT_MS=1000)
    proc = module_spawn("enms-api", env)
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    proc.base = f"http://127.0.0.1:{port}"
    proc.port = port
    proc.dsn = module_db
    return proc


def counts(dsn):
    return pg_query(dsn, "SELECT (SELECT count(*) FROM model_training_history), "
                         "(SELECT count(*) FROM job_events)")[0]


def raw(port, data, timeout=10):
    """Sends bytes as they are and returns everything the server answers
    until it closes or stays silent."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            while chunk := s.recv(65536):
                out += chunk
        except socket.timeout:
            pass
    return out


# --- binding ---------------------------------------------------------------

def run_api(bin_dir, env_extra):
    env = dict(os.environ, ENMS_HTTP_PORT=str(free_port()), **env_extra)
    env.pop("ENMS_API_TOKEN", None)
    return subprocess.run([os.path.join(bin_dir, "enms-api")], env=env, capture_output=True,
                          text=True, timeout=20)


def test_public_bind_without_token_exits_with_the_message(bin_dir):
    proc = run_api(bin_dir, {"ENMS_HTTP_ADDR": "0.0.0.0"})
    assert proc.returncode != 0
    records, problems = log_records(proc.stderr)
    assert not problems, problems
    assert any(r["level"] == "error" and "refusing to listen on 0.0.0.0 without ENMS_API_TOKEN"
               in r["msg"] and "ENMS_ALLOW_INSECURE" in r["msg"] for r in records), proc.stderr


def test_public_bind_with_allow_insecure_starts(spawn, module_db, redis_url):
    port = free_port()
    spawn("enms-api", pipeline_env(module_db, redis_url, ENMS_HTTP_ADDR="0.0.0.0",
                                   ENMS_HTTP_PORT=port, ENMS_ALLOW_INSECURE=1))
    wait_http(f"http://127.0.0.1:{port}/healthz", expect=200)
    # No token configured: the API is open, as the operator asked.
    r = requests.get(f"http://127.0.0.1:{port}/api/v1/jobs", timeout=10)
    assert r.status_code == 200, r.text


# --- the token ---------------------------------------------------------------

def test_request_without_token_gets_401_json(api):
    r = requests.get(f"{api.base}/api/v1/jobs", timeout=10)
    assert r.status_code == 401
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in r.json()["detail"]
    assert TEST_API_TOKEN not in r.text


@pytest.mark.parametrize("header", [
    f"Bearer {TEST_API_TOKEN}x",          # longer
    f"Bearer {TEST_API_TOKEN[:-1]}",      # a prefix
    f"Bearer {TEST_API_TOKEN.upper()}",   # tokens are case-sensitive
    f"Basic {TEST_API_TOKEN}",            # another scheme
    f"Bearer{TEST_API_TOKEN}",            # no separator
    "Bearer ",
])
def test_wrong_token_gets_401(api, header):
    r = requests.get(f"{api.base}/api/v1/jobs", headers={"Authorization": header}, timeout=10)
    assert r.status_code == 401, header
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["detail"]


def test_right_token_succeeds_and_scheme_is_case_insensitive(api):
    r = requests.get(f"{api.base}/api/v1/jobs", headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.get(f"{api.base}/api/v1/jobs",
                     headers={"Authorization": f"bearer  {TEST_API_TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text


def test_path_spellings_cannot_dodge_the_token(api):
    # civetweb matches handlers without regard to case and folds dot
    # segments, so each of these would reach an /api handler.
    for target in (b"/API/v1/jobs", b"//api/v1/jobs", b"/./api/v1/jobs", b"/js/../api/v1/jobs",
                   b"/%61pi/v1/jobs", b"/Metrics"):
        reply = raw(api.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = reply.split(b"\r\n", 1)[0].split()[1]
        assert status == b"401", (target, reply[:200])


def test_dashboard_and_health_stay_open(api):
    for path in ("/healthz", "/readyz", "/", "/js/main.js", "/css/dashboard.css"):
        r = requests.get(api.base + path, timeout=10)
        assert r.status_code == 200, (path, r.status_code)


def test_metrics_needs_the_token(api):
    assert requests.get(f"{api.base}/metrics", timeout=10).status_code == 401
    r = requests.get(f"{api.base}/metrics", headers=AUTH, timeout=10)
    assert r.status_code == 200
    assert "enms_http_requests_total" in r.text


def test_head_without_token_is_401_without_body(api):
    reply = raw(api.port, b"HEAD /api/v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401")
    assert body == b""


# --- bodies ------------------------------------------------------------------

def test_100_kib_body_gets_413_and_writes_nothing(api):
    before = counts(api.dsn)
    body = json.dumps({"model_type": "probe", "machine_id": MACHINE, "reason": "x" * 100 * 1024})
    s = requests.Session()
    r = s.post(api.base + TRIGGER, data=body, headers=dict(AUTH, **{"Content-Type":
                                                                    "application/json"}),
               timeout=20)
    assert r.status_code == 413, r.text
    assert "65536" in r.json()["detail"]
    assert counts(api.dsn) == before
    # The connection stays usable, and the same request under the cap works.
    r = s.post(api.base + TRIGGER, json={"model_type": "probe", "machine_id": MACHINE,
                                         "reason": "small"}, headers=AUTH, timeout=20)
    assert r.status_code == 202, r.text
    assert counts(api.dsn)[0] == before[0] + 1


def test_chunked_body_gets_411(api):
    def chunks():
        yield b'{"model_type": "probe", '
        yield b'"machine_id": "' + MACHINE.encode() + b'"}'
    before = counts(api.dsn)
    r = requests.post(api.base + TRIGGER, data=chunks(), headers=AUTH, timeout=10)
    assert r.status_code == 411, r.text
    assert "Content-Length" in r.json()["detail"]
    assert counts(api.dsn) == before


def test_body_without_length_gets_411(api):
    reply = raw(api.port, (f"POST {TRIGGER} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                           f"{TEST_API_TOKEN}\r\nConnection: close\r\n\r\n").encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 411"), reply[:200]
    assert "Content-Length" in json.loads(body)["detail"]


@pytest.mark.parametrize("depth", [33, 20000])  # 20000: 40 KB, under the body cap
def test_deeply_nested_json_gets_400(api, depth):
    before = counts(api.dsn)
    body = '{"model_type": "probe", "machine_id": "%s", "params": %s1%s}' % (
        MACHINE, "[" * depth, "]" * depth)
    r = requests.post(api.base + TRIGGER, data=body, headers=AUTH, timeout=10)
    assert r.status_code == 400, r.text
    assert "nested deeper than 32" in r.json()["detail"]
    assert counts(api.dsn) == before


def test_nesting_within_the_limit_is_not_refused_for_depth(api):
    # 32 levels in all (the object and 31 arrays): other checks may refuse
    # the params, the nesting check must not.
    body = '{"model_type": "probe", "machine_id": "%s", "params": %s1%s}' % (
        MACHINE, "[" * 31, "]" * 31)
    r = requests.post(api.base + TRIGGER, data=body, headers=AUTH, timeout=10)
    assert "nested" not in r.text, r.text
    # Brackets inside strings are text, not nesting.
    r = requests.post(api.base + TRIGGER, headers=AUTH, timeout=10,
                      json={"model_type": "probe", "machine_id": MACHINE, "reason": "[" * 100})
    assert "nested" not in r.text, r.text


# --- headers -------------------------------------------------------------------

def test_dashboard_security_headers(api):
    for path in ("/", "/js/main.js"):
        r = requests.get(api.base + path, timeout=10)
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Referrer-Policy"] == "no-referrer"
    r = requests.get(f"{api.base}/api/v1/jobs", headers=AUTH, timeout=10)
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_request_id_is_echoed_or_made(api):
    r = requests.get(f"{api.base}/api/v1/jobs", headers=dict(AUTH, **{"X-Request-Id":
                                                                       "trace-1.A_b"}), timeout=10)
    assert r.headers["X-Request-Id"] == "trace-1.A_b"
    made = requests.get(f"{api.base}/api/v1/jobs", headers=AUTH, timeout=10).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    # Unsafe or oversized ids are replaced, not echoed.
    for bad in ("has space", "quote\"d", "x" * 65, "<script>"):
        got = requests.get(f"{api.base}/api/v1/jobs", timeout=10,
                           headers=dict(AUTH, **{"X-Request-Id": bad})).headers["X-Request-Id"]
        assert got != bad and re.fullmatch(r"[0-9a-f]{32}", got), bad
    # A 401 carries one too, so a refused client can quote it.
    assert re.fullmatch(r"[0-9a-f]{32}", requests.get(f"{api.base}/api/v1/jobs", timeout=10)
                        .headers["X-Request-Id"])


def test_slow_client_is_cut_off(api):
    # Headers never finished: with ENMS_HTTP_TIMEOUT_MS=1000 the server gives
    # up and closes; the 30 s socket timeout only guards the test.
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as s:
        s.sendall(b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    # Closed without serving the request (civetweb may say 400 first).
    assert b"200 OK" not in data


# --- logs --------------------------------------------------------------------

def wait_access_line(api, predicate, timeout=10.0):
    """The access line is written after the reply is sent: poll the log."""
    deadline = time.monotonic() + timeout
    while True:
        records, problems = log_records(api.output())
        assert not problems, problems
        found = [r for r in records if r.get("kind") == "access" and predicate(r)]
        if found or time.monotonic() > deadline:
            return found, records
        time.sleep(0.05)


def test_access_log_has_route_status_duration_and_never_the_token(api):
    job = "3f2b8c1e-0000-4000-8000-00000000abcd"
    r = requests.get(f"{api.base}/api/v1/jobs/{job}?secret_query=1", timeout=10,
                     headers=dict(AUTH, **{"X-Request-Id": "log-check-1"}))
    assert r.status_code == 404, r.text
    found, records = wait_access_line(api, lambda rec: rec.get("request_id") == "log-check-1")
    assert len(found) == 1, records[-5:]
    line = found[0]
    assert line["route"] == "/api/v1/jobs/{job_id}" and line["method"] == "GET"
    assert line["status"] == 404 and isinstance(line["duration_ms"], (int, float))
    assert line["duration_ms"] >= 0 and line["remote"] == "127.0.0.1"
    assert line["component"] == "api" and line["level"] == "info"
    text = api.output()
    assert job not in text and "secret_query" not in text
    assert TEST_API_TOKEN not in text
    # Refused requests are logged too, with their status.
    requests.get(f"{api.base}/api/v1/queue", headers={"X-Request-Id": "log-check-2"}, timeout=10)
    found, _ = wait_access_line(api, lambda rec: rec.get("request_id") == "log-check-2")
    assert [(f["route"], f["status"]) for f in found] == [("/api/v1/queue", 401)]


def test_hostile_path_cannot_break_or_forge_log_lines(api):
    # A quote, a newline, a backslash and a byte that is not UTF-8, all
    # percent-encoded: civetweb decodes them into the path the access log names.
    target = b"/x%22y%0a%7b%22level%22:%22error%22%7d%5c%ff"
    raw(api.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nX-Request-Id: hostile-1\r\n"
                  b"Connection: close\r\n\r\n")
    found, _ = wait_access_line(api, lambda rec: rec.get("request_id") == "hostile-1")
    assert len(found) == 1  # one line, valid JSON (wait_access_line checks every line)
    # (civetweb itself turns the backslash into a slash.)
    assert found[0]["route"] == '/x"y\n{"level":"error"}/\ufffd'
    assert found[0]["level"] == "info"
