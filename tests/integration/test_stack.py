"""`make run`'s stack script: starts everything, serves, and Ctrl-C leaves nothing."""
import os
import shutil
import signal
import subprocess
import time

import requests

from conftest import ROOT, free_port, wait_http


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_stack_run_serves_and_ctrl_c_stops_everything(tmp_path, bin_dir):
    run_dir = tmp_path / "run"
    port = free_port()
    env = dict(os.environ, ENMS_RUN_DIR=str(run_dir), ENMS_HTTP_PORT=str(port), ENMS_BIN=bin_dir)
    for name in ("ENMS_PG_DSN", "ENMS_REDIS_URL"):
        env.pop(name, None)
    log = open(tmp_path / "stack.log", "wb")
    started = time.monotonic()
    # Its own process group, like a terminal's foreground job: Ctrl-C is a
    # SIGINT to every process in the group.
    stack = subprocess.Popen(["bash", os.path.join(ROOT, "scripts/stack.sh"), "run"], env=env,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", expect=200, timeout=60)
        wait_http(f"http://127.0.0.1:{port}/readyz", expect=200, timeout=60)
        ready_after = time.monotonic() - started
        print(f"stack ready after {ready_after:.1f} s")

        env_file = (run_dir / "env").read_text()
        assert "export ENMS_PG_DSN=postgresql://" in env_file
        assert "export ENMS_REDIS_URL=redis://127.0.0.1:" in env_file
        assert f"export ENMS_HTTP_PORT={port}" in env_file
        pids = [int((run_dir / "pids" / f).read_text()) for f in os.listdir(run_dir / "pids")]
        assert len(pids) == 3, pids  # api + 2 workers
        redis_pid = int((run_dir / "redis" / "redis.pid").read_text())
        pg_dir = [l.split("=", 1)[1] for l in env_file.splitlines()
                  if l.startswith("STACK_PG_DIR=")][0]
        pg_pid = int(open(os.path.join(pg_dir, "data", "postmaster.pid")).readline())
        # Demo data was seeded because the database was empty.
        r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert r.json()["postgresql"] == "ok"
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=60)
        finally:
            log.close()
    output = (tmp_path / "stack.log").read_text()
    assert stack.returncode == 0, output
    assert "stack: stopped" in output
    for pid in pids + [redis_pid, pg_pid]:
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), f"pid {pid} still running after Ctrl-C\n{output}"
    left = subprocess.run(["pgrep", "-af", str(run_dir)], capture_output=True, text=True).stdout
    assert left == "", left
    if pg_dir.startswith("/tmp/enms-run-"):
        shutil.rmtree(os.path.dirname(pg_dir), ignore_errors=True)
    assert "seeded 8 machines" in output or "already present" in output, output
