"""`make run`'s stack script: starts everything, serves, Ctrl-C leaves nothing,
and a second start reuses the data."""
import os
import shutil
import signal
import subprocess
import time

import requests

from conftest import ROOT, free_port, wait_http


def alive(pid):
    """True while pid runs; a zombie (exited, not yet reaped by init) is not alive."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def env_value(env_file, name):
    for line in env_file.splitlines():
        for prefix in (f"export {name}=", f"{name}="):
            if line.startswith(prefix):
                return line[len(prefix):]
    raise AssertionError(f"{name} missing from .run/env:\n{env_file}")


def run_stack_once(tmp_path, run_dir, port, bin_dir, label):
    """Starts `stack.sh run`, checks it serves, sends Ctrl-C, checks nothing is left.
    Returns (output, ENMS_PG_DSN, seconds until /readyz answered 200)."""
    env = dict(os.environ, ENMS_RUN_DIR=str(run_dir), ENMS_HTTP_PORT=str(port), ENMS_BIN=bin_dir)
    for name in ("ENMS_PG_DSN", "ENMS_REDIS_URL"):
        env.pop(name, None)
    log_path = tmp_path / f"stack-{label}.log"
    log = open(log_path, "wb")
    started = time.monotonic()
    # Its own process group, like a terminal's foreground job: Ctrl-C is a
    # SIGINT to every process in the group.
    stack = subprocess.Popen(["bash", os.path.join(ROOT, "scripts/stack.sh"), "run"], env=env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    pids = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", expect=200, timeout=60)
        wait_http(f"http://127.0.0.1:{port}/readyz", expect=200, timeout=60)
        ready_after = time.monotonic() - started
        env_file = (run_dir / "env").read_text()
        assert env_value(env_file, "ENMS_PG_DSN").startswith("postgresql://postgres@127.0.0.1:")
        assert env_value(env_file, "ENMS_REDIS_URL").startswith("redis://127.0.0.1:")
        assert env_value(env_file, "ENMS_HTTP_PORT") == str(port)
        dsn = env_value(env_file, "ENMS_PG_DSN")
        pids = [int((run_dir / "pids" / f).read_text()) for f in os.listdir(run_dir / "pids")]
        assert len(pids) == 3, pids  # api + 2 workers
        pids.append(int((run_dir / "redis" / "redis.pid").read_text()))
        pg_dir = env_value(env_file, "STACK_PG_DIR")
        pids.append(int(open(os.path.join(pg_dir, "data", "postmaster.pid")).readline()))
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=60)
        finally:
            log.close()
    output = log_path.read_text()
    assert stack.returncode == 0, output
    assert "stack: stopped" in output
    for pid in pids:
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), f"pid {pid} still running after Ctrl-C\n{output}"
    left = subprocess.run(["pgrep", "-af", str(run_dir)], capture_output=True, text=True).stdout
    assert left == "", left
    return output, dsn, ready_after


def test_stack_run_serves_stops_cleanly_and_reuses_data(tmp_path, bin_dir):
    run_dir = tmp_path / "run"
    port = free_port()
    try:
        output, dsn, ready = run_stack_once(tmp_path, run_dir, port, bin_dir, "first")
        print(f"first start: ready after {ready:.1f} s (includes initdb, migrate, seed)")
        assert "seeded 8 machines, 70080 readings" in output, output

        output, dsn2, ready = run_stack_once(tmp_path, run_dir, port, bin_dir, "second")
        print(f"second start: ready after {ready:.1f} s")
        assert dsn2 == dsn  # same ports, same data folder
        assert "demo data already present (70080 readings)" in output, output
        assert "0 applied now" in output, output
    finally:
        env_file = run_dir / "env"
        if env_file.exists():
            pg_dir = env_value(env_file.read_text(), "STACK_PG_DIR")
            if pg_dir.startswith("/tmp/enms-run-"):
                shutil.rmtree(os.path.dirname(pg_dir), ignore_errors=True)
