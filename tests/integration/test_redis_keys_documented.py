"""Acceptance 8: every Redis key the code writes is listed in docs/queue.md, and
all of them live under one hash-tagged prefix.

Three checks: the key kinds named in the C sources are in the document's key
table; a session of enmsctl operations leaves only documented keys; and a
realistic session with the API and workers (trigger, complete, cancel, crash,
dead-letter) does too."""
import glob
import json
import os
import re
import signal
import time

import requests

from conftest import ROOT, run_ctl
from pipeline import (MACHINE, add_machine, pipeline_env, redis_client, start_api, start_worker,
                      trigger, wait_for, wait_status)
from test_housekeeping import insert_job

DOC = os.path.join(ROOT, "docs", "queue.md")


def documented_patterns():
    """{kind: has_name} from the key table rows "| `{enms}:kind[:<name>]` | ..."."""
    text = open(DOC).read()
    patterns = {}
    for key in re.findall(r"^\| `\{enms\}:([^`]+)` \|", text, re.M):
        parts = key.split(":")
        if len(parts) == 1:
            patterns[parts[0]] = False
        elif len(parts) == 2 and re.fullmatch(r"<[a-z_]+>|[a-z_]+", parts[1]):
            # kind:<name> is a family of keys; lock:housekeeping is one fixed key.
            patterns[parts[0]] = parts[1] if not parts[1].startswith("<") else True
        else:
            raise AssertionError(f"cannot read key pattern {key!r} in docs/queue.md")
    return patterns


def assert_documented(key, prefix, patterns):
    assert re.fullmatch(r"\{[^{}]+\}", prefix), prefix
    assert key.startswith(prefix + ":"), f"{key} is not under the prefix {prefix}"
    rest = key[len(prefix) + 1:]
    kind, _, name = rest.partition(":")
    assert kind in patterns, f"{key}: kind {kind!r} is not in docs/queue.md"
    want = patterns[kind]
    if want is False:
        assert name == "", f"{key}: {kind} takes no name in docs/queue.md"
    elif want is True:
        assert name != "", f"{key}: {kind} needs a name in docs/queue.md"
    else:
        assert name == want, f"{key}: docs/queue.md lists only {kind}:{want}"


def test_every_key_kind_in_the_sources_is_documented():
    patterns = documented_patterns()
    kinds = set()
    sources = [f for d in ("common", "api", "worker", "ctl")
               for f in glob.glob(os.path.join(ROOT, d, "**", "*.[ch]"), recursive=True)]
    for path in sources:
        text = open(path).read()
        # queue_key(buf, size, prefix, "kind", name) and the files' own wrappers of it
        # (queue.c's key_or_fail, housekeeping.c's make_key): the first string argument.
        kinds.update(re.findall(r"\b(?:queue_key|key_or_fail|make_key)\([^;\"]*?\"([a-z_]+)\"",
                                text, re.S))
        # redis_key(buf, size, prefix, "kind") and suffixes formatted as "kind:%s"
        kinds.update(re.findall(r"redis_key\([^;]*?,\s*\"([a-z_]+)\"\)", text, re.S))
        if "redis_key(" in text:
            kinds.update(re.findall(r"\"([a-z_]+):%s\"", text))
    assert {"queue", "processing", "lease", "job", "dead", "events", "lock"} <= kinds, kinds
    missing = kinds - set(patterns)
    assert not missing, f"key kinds written by the code but not in docs/queue.md: {missing}"
    # And the document lists nothing the code never writes.
    assert set(patterns) <= kinds | {"workers", "worker"}, set(patterns) - kinds


def scan_prefix(r, prefix):
    return sorted(r.scan_iter(match=prefix.replace("[", "\\[") + ":*", count=1000))


def assert_all_keys_hash_tagged(r):
    """Nothing anywhere in the server escapes a hash-tagged prefix."""
    stray = [k for k in r.scan_iter(count=1000) if not re.match(r"\{[^{}]+\}:", k)]
    assert not stray, stray


def test_keys_left_by_enmsctl_operations_are_documented(migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_MAX_ATTEMPTS=1)
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    ctl = lambda *a: run_ctl(os.environ["ENMS_BIN"], migrated_db, *a, env_extra=env)  # noqa
    lost = insert_job(migrated_db, "running", attempts=1, worker_id="w-x", started_ago=20)
    r.lpush(f"{p}:processing:w-x", lost)
    r.sadd(f"{p}:workers", "w-x")
    insert_job(migrated_db, "pending", updated_ago=30)
    running = insert_job(migrated_db, "running", attempts=1, worker_id="w-y", started_ago=1)
    assert ctl("housekeeping").returncode == 0          # dead-letters `lost`, redispatches
    assert ctl("cancel", running).returncode == 0        # cancel flag, live hash
    assert ctl("requeue", "--all").returncode == 0       # back onto the queue
    keys = scan_prefix(r, p)
    assert any(k.startswith(f"{p}:job:") for k in keys), keys
    patterns = documented_patterns()
    for key in keys:
        assert_documented(key, p, patterns)
    assert_all_keys_hash_tagged(r)
    for key in keys:
        r.delete(key)


def test_keys_of_a_realistic_session_are_documented(spawn, migrated_db, redis_url):
    add_machine(migrated_db, MACHINE)
    env = pipeline_env(migrated_db, redis_url, ENMS_MAX_ATTEMPTS=1)
    p = env["ENMS_REDIS_PREFIX"]
    r = redis_client(redis_url)
    api = start_api(spawn, env)
    workers = [start_worker(spawn, env, f"keys-{i}") for i in range(2)]
    sub = r.pubsub()
    sub.subscribe(f"{p}:events")

    done = trigger(api.base, params={"steps": 3, "step_ms": 50}).json()["training_job_id"]
    wait_status(migrated_db, done, "completed", timeout=20)
    long_job = trigger(api.base, params={"steps": 100, "step_ms": 100}).json()["training_job_id"]
    wait_status(migrated_db, long_job, "running", timeout=20)
    resp = requests.post(f"{api.base}/api/v1/jobs/{long_job}/cancel", timeout=10)
    assert resp.status_code in (200, 202), resp.text
    wait_status(migrated_db, long_job, "cancelled", timeout=10)
    crash = trigger(api.base, params={"steps": 5, "step_ms": 50, "crash_at": 1})
    crash_id = crash.json()["training_job_id"]
    wait_status(migrated_db, crash_id, "failed", timeout=30)
    # PostgreSQL first, then the dead-letter list: the push follows the commit.
    wait_for(lambda: crash_id in r.lrange(f"{p}:dead", 0, -1), 5, "crashed job in the dead-letter list")
    time.sleep(1)
    events = []
    while (m := sub.get_message(timeout=0.2)) is not None:
        if m["type"] == "message":
            events.append(json.loads(m["data"]))
    assert {e["job_id"] for e in events} >= {done, long_job, crash_id}
    sub.close()

    keys = scan_prefix(r, p)
    kinds = {k[len(p) + 1:].split(":")[0] for k in keys}
    assert {"workers", "worker", "job", "dead"} <= kinds, kinds
    patterns = documented_patterns()
    for key in keys:
        assert_documented(key, p, patterns)
    assert_all_keys_hash_tagged(r)
    for w in workers:
        w.stop(signal.SIGTERM)
