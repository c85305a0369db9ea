"""Fixtures shared by the black-box tests.

tests/run.sh starts a throwaway PostgreSQL and Redis and exports:
  ENMS_PG_DSN            the suite's default database (migrated by the harness)
  ENMS_TEST_PG_ADMIN_DSN the 'postgres' database, for CREATE DATABASE
  ENMS_REDIS_URL         redis://127.0.0.1:<port>/0
  ENMS_BIN               folder with enms-api, enms-worker, enmsctl
Tests that change schema or data use `fresh_db`, a new empty database.
"""
import json
import os
import socket
import subprocess
import uuid

import psycopg2
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite through tests/run.sh (make test)")
    return value


@pytest.fixture(scope="session")
def bin_dir():
    return _env("ENMS_BIN")


@pytest.fixture(scope="session")
def admin_dsn():
    return _env("ENMS_TEST_PG_ADMIN_DSN")


@pytest.fixture(scope="session")
def redis_url():
    return _env("ENMS_REDIS_URL")


def _dsn_with_db(admin, dbname):
    # Admin DSN is a URL ending in /postgres; swap the database name.
    base, _, _ = admin.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture
def fresh_db(admin_dsn):
    """An empty database, dropped after the test. Yields its DSN."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield _dsn_with_db(admin_dsn, name)
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture(scope="session")
def migrated_template(admin_dsn, bin_dir):
    """A database migrated once by `enmsctl migrate` that no test connects to:
    each migrated_db is a copy of it (CREATE DATABASE ... TEMPLATE is a file
    copy, far faster than running the migrations for every test).
    tests/integration/test_migrate.py runs the migrations themselves."""
    name = "tmpl_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        run_ctl(bin_dir, _dsn_with_db(admin_dsn, name), "migrate", check=True)
        yield name
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def migrated_db(admin_dsn, migrated_template):
    """A fresh database with every migration applied (a copy of the migrated
    template), dropped after the test. Yields its DSN."""
    name = "t_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    try:
        yield _dsn_with_db(admin_dsn, name)
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture(scope="module")
def module_db(admin_dsn, migrated_template):
    """A migrated database shared by one test module (for modules whose
    tests read the same seeded and trained data), dropped after it."""
    name = "m_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    try:
        dsn = _dsn_with_db(admin_dsn, name)
        yield dsn
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def run_ctl(bin_dir, dsn, *args, check=False, env_extra=None, timeout=120):
    env = dict(os.environ)
    env["ENMS_PG_DSN"] = dsn
    if env_extra:
        env.update(env_extra)
    proc = subprocess.run([os.path.join(bin_dir, "enmsctl"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"enmsctl {' '.join(args)} failed ({proc.returncode}):\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_query(dsn, sql, params=None):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
    conn.close()
    return rows


# Log checks (issue 7): every line our processes write is one JSON object with
# these fields, and no secret handed to a process ever shows up in a log.
LOG_FIELDS = ("time", "level", "component", "msg")
# A token for tests that enable authentication; any ENMS_API_TOKEN given to a
# Proc is added to LOG_SECRETS too, and checked for in every log.
TEST_API_TOKEN = "tok-7e1f0c55-never-logged-b9d2"
LOG_SECRETS = {TEST_API_TOKEN}
_ALL_LOGS = []


def log_records(text):
    """Parses a log: returns (records, problems), problems naming each line
    that is not a JSON object with LOG_FIELDS and each secret found."""
    records, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            problems.append(f"line {n} is not JSON: {line[:300]}")
            continue
        missing = [k for k in LOG_FIELDS if not isinstance(rec, dict) or k not in rec]
        if missing:
            problems.append(f"line {n} lacks {missing}: {line[:300]}")
        else:
            records.append(rec)
    for secret in LOG_SECRETS:
        if secret and secret in text:
            problems.append("a secret (ENMS_API_TOKEN value) appears in the log")
    return records, problems


def check_logs(procs):
    """Fails naming every bad line of the (stopped) processes' logs."""
    problems = []
    for p in procs:
        problems += [f"{p.log_path}: {m}" for m in log_records(p.output())[1]]
    assert not problems, "log check failed:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_log():
    """Session-wide: no log of any process a test started holds a secret."""
    yield
    leaks = []
    for path in _ALL_LOGS:
        try:
            with open(path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            continue
        leaks += [path for s in LOG_SECRETS if s and s in text]
    assert not leaks, f"a secret token appears in: {sorted(set(leaks))}"


class Proc:
    """A binary of ours run in the background; stopped (and reaped) by stop()."""

    def __init__(self, args, env, log_path):
        self.log_path = log_path
        if env.get("ENMS_API_TOKEN"):
            LOG_SECRETS.add(env["ENMS_API_TOKEN"])
        _ALL_LOGS.append(str(log_path))
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=None, timeout=15):
        import signal as _signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or _signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def wait_http(url, timeout=20.0, expect=None):
    """Polls url until it answers (with status expect, when given)."""
    import time
    import requests
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = requests.get(url, timeout=2)
            if expect is None or r.status_code == expect:
                return r
            last = r
        except requests.RequestException as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {expect or ''} within {timeout}s: {last!r}")


def _spawner(folder, bin_dir):
    procs = []

    def _spawn(name, env_extra=None, args=()):
        env = dict(os.environ)
        env.update(env_extra or {})
        p = Proc([os.path.join(bin_dir, name), *args], env,
                 str(folder / f"{name}-{len(procs)}.log"))
        procs.append(p)
        return p

    return _spawn, procs


@pytest.fixture(scope="module")
def module_spawn(tmp_path_factory, bin_dir):
    """spawn() for processes shared by one test module."""
    _spawn, procs = _spawner(tmp_path_factory.mktemp("module"), bin_dir)
    yield _spawn
    for p in procs:
        p.stop()
    check_logs(procs)


@pytest.fixture
def spawn(tmp_path, bin_dir):
    """spawn(name, env_overrides) starts build binary `name`; all are stopped at teardown."""
    procs = []

    def _spawn(name, env_extra=None, args=()):
        env = dict(os.environ)
        env.update(env_extra or {})
        p = Proc([os.path.join(bin_dir, name), *args], env,
                 str(tmp_path / f"{name}-{len(procs)}.log"))
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        p.stop()
    check_logs(procs)
