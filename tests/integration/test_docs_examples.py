"""Every shell example in the guides runs (issue 10, acceptance 1).

The fenced blocks marked sh, bash, shell or console in DOCS are extracted and executed, in
order, against a live stack started the way `make up` starts it (scripts/stack.sh up: its own
PostgreSQL and Redis, migrate, demo data, the API and two workers), from a folder laid out
like a checkout (`.run/`, `build/bin`, `scripts/`). A block that cannot run here (make run
itself, docker, systemctl, apt-get, a Redis Cluster) carries a visible marker on the line
before it:

    <!-- not-run: why -->

and the reason must be given. Any other block is executed; a block without a marker that
fails, or that the test did not run, fails the test. Per block:

- it runs under `bash -e -o pipefail`, so any failing command fails it;
- every curl call reports its HTTP status (a wrapper adds `--write-out` to stderr) and any
  status >= 400 fails the block, unless the marker `<!-- expect-http: NNN -->` says which
  error status the example shows;
- `127.0.0.1:8080` is the stack's port; the placeholders JOB_ID and OLD_DSN are replaced by
  a real job id and by a database shaped like the Python system (tests/integration/
  legacy_system.py);
- shell variables (upper case) and functions a block defines are kept for the later blocks of
  the same document, as in the terminal of a reader who runs them one after the other.
"""
import os
import re
import shlex
import shutil
import subprocess
import uuid

import pytest

from conftest import ROOT, free_port, pg_query, wait_http
from legacy_system import create_legacy_db, drop_db

DOCS = ["README.md", "docs/user-guide.md", "docs/architecture.md", "docs/migration.md",
        "docs/operations.md"]
SHELL = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([A-Za-z0-9_+-]*)")
MARK = re.compile(r"^\s*<!--\s*(not-run|expect-http):\s*(.*?)\s*-->\s*$")
ASSIGN = re.compile(r"(?:^|;)\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=", re.M)
FUNC = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\)\s*\{", re.M)


def shell_blocks(path):
    """(line number, language, code, marks) of every shell block in a Markdown file; marks
    are the <!-- not-run / expect-http --> comments on the lines just above the fence."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1
        if lang not in SHELL:
            continue
        marks, j = {}, start - 1
        while j >= 0 and MARK.match(lines[j]):
            k, v = MARK.match(lines[j]).groups()
            marks[k] = v
            j -= 1
        code = "\n".join(body)
        if lang == "console":  # commands are the lines after a prompt
            code = "\n".join(ln[2:] for ln in body if ln.startswith("$ "))
        out.append((start + 1, lang, code, marks))
    return out


def test_marker_parser_sees_markers_and_console_prompts(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("a\n<!-- not-run: needs docker -->\n```sh\ndocker ps\n```\n\n"
                  "- item\n  <!-- expect-http: 409 -->\n  ```bash\n  curl x\n  ```\n"
                  "```console\n$ echo hi\nhi\n```\n```json\n{}\n```\n")
    blocks = shell_blocks(str(md))
    assert [(b[1], b[2], b[3]) for b in blocks] == [
        ("sh", "docker ps", {"not-run": "needs docker"}),
        ("bash", "curl x", {"expect-http": "409"}),
        ("console", "echo hi", {})]


def test_every_doc_has_its_shell_examples_marked_or_runnable():
    for doc in DOCS:
        path = os.path.join(ROOT, doc)
        assert os.path.exists(path), doc
        for line, _, code, marks in shell_blocks(path):
            if "not-run" in marks:
                assert marks["not-run"], f"{doc}:{line}: not-run without a reason"
            assert code.strip(), f"{doc}:{line}: empty block"


@pytest.fixture(scope="module")
def live(tmp_path_factory, bin_dir, admin_dsn):
    """A checkout-like folder with the stack of `make up` running in it."""
    work = tmp_path_factory.mktemp("docs-run")
    os.makedirs(work / "build")
    os.symlink(bin_dir, work / "build" / "bin")
    for name in ("scripts", "schema", "web", "deploy", "docs"):
        os.symlink(os.path.join(ROOT, name), work / name)
    # A port free when picked can be taken by another test before the stack binds it: the
    # stack then refuses to start (nothing else started) and another port is tried.
    for _ in range(3):
        port = free_port()
        env = dict(os.environ, ENMS_RUN_DIR=str(work / ".run"), ENMS_HTTP_PORT=str(port),
                   ENMS_BIN=bin_dir)
        for name in ("ENMS_PG_DSN", "ENMS_REDIS_URL", "ENMS_API_TOKEN"):
            env.pop(name, None)
        up = subprocess.run(["bash", os.path.join(ROOT, "scripts", "stack.sh"), "up"], env=env,
                            cwd=work, capture_output=True, text=True, timeout=300)
        if up.returncode == 0 or f"port {port} is in use" not in up.stdout + up.stderr:
            break
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        wait_http(f"http://127.0.0.1:{port}/readyz", expect=200, timeout=60)
        stack_env = {}
        for line in (work / ".run" / "env").read_text().splitlines():
            m = re.match(r"^export (ENMS_[A-Z_]+)=(.*)$", line)
            if m:
                stack_env[m.group(1)] = m.group(2)
        legacy = "docs_legacy_" + uuid.uuid4().hex[:8]
        stack_admin = stack_env["ENMS_PG_DSN"].rpartition("/")[0] + "/postgres"
        old_dsn = create_legacy_db(stack_admin, legacy)
        yield {"work": str(work), "port": port, "env": dict(env, **stack_env), "old_dsn": old_dsn,
               "dsn": stack_env["ENMS_PG_DSN"]}
        drop_db(stack_admin, legacy)
    finally:
        down = subprocess.run(["bash", os.path.join(ROOT, "scripts", "stack.sh"), "down"], env=env,
                              cwd=work, capture_output=True, text=True, timeout=120)
        logs = ""
        logdir = work / ".run" / "logs"
        if logdir.exists():
            for f in sorted(os.listdir(logdir)):
                text = (logdir / f).read_text(errors="replace")
                if "Sanitizer" in text:
                    logs += f"--- {f}\n{text[-3000:]}\n"
        # Under /root the stack keeps PostgreSQL's data in /tmp (stack.sh pg_data_dir): a
        # removed checkout would leave it behind.
        env_file = work / ".run" / "env"
        if down.returncode == 0 and env_file.exists():
            for line in env_file.read_text().splitlines():
                if line.startswith("STACK_PG_DIR=/tmp/enms-run-"):
                    shutil.rmtree(os.path.dirname(line.split("=", 1)[1]), ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr
        assert logs == "", logs


PRELUDE = r"""
curl() { command curl --write-out '%{stderr}enms-docs-http %{http_code}\n' "$@"; }
"""


def placeholders(live):
    """Values for the placeholders the docs use, read from the live stack when needed."""
    job = pg_query(live["dsn"], "SELECT id::text FROM model_training_history "
                   "ORDER BY created_at DESC LIMIT 1")
    return {"JOB_ID": job[0][0] if job else str(uuid.uuid4()), "OLD_DSN": live["old_dsn"]}


def run_block(live, doc, line, code, marks, state_file):
    code = code.replace("127.0.0.1:8080", f"127.0.0.1:{live['port']}")
    for name, value in placeholders(live).items():
        code = re.sub(rf"\b{name}\b", shlex.quote(value) if name == "OLD_DSN" else value, code)
    keep = sorted(set(ASSIGN.findall(code)))
    funcs = sorted(set(FUNC.findall(code)))
    state = shlex.quote(state_file)
    script = (PRELUDE + f"if [ -f {state} ]; then . {state}; fi\n" + code + "\n"
              + (f"declare -p {' '.join(keep)} >> {state}\n" if keep else "")
              + (f"declare -f {' '.join(funcs)} >> {state}\n" if funcs else ""))
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=live["work"],
                       env=live["env"], capture_output=True, text=True, timeout=300)
    where = f"{doc}:{line}\n--- block\n{code}\n--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}"
    assert r.returncode == 0, f"exit {r.returncode}: {where}"
    statuses = [int(s) for s in re.findall(r"^enms-docs-http (\d{3})$", r.stderr, re.M)]
    expected = {int(s) for s in marks.get("expect-http", "").split()} if "expect-http" in marks else set()
    bad = [s for s in statuses if s >= 400 and s not in expected]
    assert not bad, f"HTTP {bad}: {where}"
    if expected:
        assert expected & set(statuses), f"the error {expected} the doc shows did not happen: {where}"
    return statuses


@pytest.mark.parametrize("doc", DOCS)
def test_doc_examples_run_against_the_make_up_stack(live, doc, tmp_path):
    blocks = shell_blocks(os.path.join(ROOT, doc))
    ran = 0
    state = str(tmp_path / "state.sh")
    for line, _, code, marks in blocks:
        if "not-run" in marks:
            continue
        run_block(live, doc, line, code, marks, state)
        ran += 1
    assert ran > 0, f"{doc}: no example was executed"
    # The stack is still healthy after the examples (none of them broke it).
    wait_http(f"http://127.0.0.1:{live['port']}/readyz", expect=200, timeout=30)
