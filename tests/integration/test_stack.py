"""`make run`'s stack script: starts everything, serves, Ctrl-C leaves nothing,
and a second start reuses the data."""
import os
import shutil
import signal
import subprocess
import time

import requests

from conftest import ROOT, free_port


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


class PortTaken(Exception):
    """Another test's server took the HTTP port between free_port() and the stack's start."""


def wait_ready(stack, log_path, port, timeout=90):
    """Waits for /readyz 200 from *this* stack. Fails at once, with the stack's output, when
    the stack exits first: a server answering on the port is then some other test's (tests run
    in parallel and free ports are only free when picked), whose 503 would otherwise be
    mistaken for ours."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            output = log_path.read_text()
            if f"port {port} is in use" in output:
                raise PortTaken(output)
            raise AssertionError(f"the stack exited ({stack.returncode}) before it was ready:\n{output}")
        try:
            r = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text}"
        except requests.RequestException as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"/readyz not 200 within {timeout}s (last: {last!r})\n{log_path.read_text()}")


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
        wait_ready(stack, log_path, port)
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
        try:
            os.killpg(stack.pid, signal.SIGINT)
        except ProcessLookupError:  # it had exited already (wait_ready says why)
            pass
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


def run_stack_on_a_free_port(tmp_path, run_dir, bin_dir, label):
    """run_stack_once on a port picked now, picked again when another test took it first."""
    for attempt in range(3):
        try:
            return run_stack_once(tmp_path, run_dir, free_port(), bin_dir, f"{label}-{attempt}")
        except PortTaken as e:
            taken = e
    raise AssertionError(f"the HTTP port was taken three times:\n{taken}")


def test_stack_run_serves_stops_cleanly_and_reuses_data(tmp_path, bin_dir):
    run_dir = tmp_path / "run"
    try:
        output, dsn, ready = run_stack_on_a_free_port(tmp_path, run_dir, bin_dir, "first")
        print(f"first start: ready after {ready:.1f} s (includes initdb, migrate, seed)")
        assert "seeded 8 machines, 70080 readings" in output, output

        output, dsn2, ready = run_stack_on_a_free_port(tmp_path, run_dir, bin_dir, "second")
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
