"""docs/api.md against web/openapi.json and against a running stack.

The reference and the OpenAPI document must agree both ways: every operation
has a section headed "### METHOD /path" and no section names an operation
that does not exist; a section's parameter table names exactly the
operation's parameters (path, query and JSON body fields) and its status
table exactly the statuses the document lists.

Then every curl example of docs/api.md is run, in document order, with bash
and the real curl against the stack `make up` starts (the same binaries: a
migrated database with `enmsctl seed`'s demo data, the API and one worker).
An example is a ```sh block holding one curl command, then a line
"→ <status>", then (optionally) the answer in a ```json or ```text block.
The test asserts the status, and for JSON the keys of the documented answer
(all of them at the top level, the documented ones deeper down) and, for an
error, its `detail` text (ids masked). The placeholders the examples use
($ENMS, $JOB_ID, ...) are set from the live data when the example runs (see
RESOLVERS and the doc's placeholder table), and an HTML comment
"<!-- docs-test: wait-idle -->" before an example makes the test wait until
no job is pending or running, as a reader would wait for a training to end.
Examples under "## Authentication" run against a second API process started
with ENMS_API_TOKEN."""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import ROOT, TEST_API_TOKEN, pg_query, run_ctl
from pipeline import pipeline_env, start_api, start_worker

DOC_PATH = os.path.join(ROOT, "docs", "api.md")
SPEC_PATH = os.path.join(ROOT, "web", "openapi.json")
METHODS = ("get", "post", "put", "patch", "delete")
HEADING = re.compile(r"^### (GET|POST|PUT|PATCH|DELETE) (/\S*)\s*$")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MACHINE_1 = "c0000000-0000-0000-0000-000000000001"
WAIT_IDLE = "<!-- docs-test: wait-idle -->"
AUTH_SECTION = "## Authentication"


def load_doc():
    with open(DOC_PATH, encoding="utf-8") as f:
        return f.read()


def load_spec():
    with open(SPEC_PATH, encoding="utf-8") as f:
        return json.load(f)


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def spec_operations(spec):
    """{(METHOD, path): operation} of the OpenAPI document."""
    return {(m.upper(), path): op for path, item in spec["paths"].items()
            for m, op in item.items() if m in METHODS}


def spec_parameters(spec, path, op):
    """Names of the operation's path and query parameters and of the fields
    of its JSON body (the object schemas, also inside oneOf)."""
    item = spec["paths"][path]
    names = {resolve(spec, p)["name"]
             for p in op.get("parameters", []) + item.get("parameters", [])}
    body = resolve(spec, op.get("requestBody", {}))
    schema = resolve(spec, body.get("content", {}).get("application/json", {}).get("schema", {}))
    for s in [schema] + [resolve(spec, x) for x in schema.get("oneOf", [])]:
        names |= set(s.get("properties", {}))
    return names


def doc_sections(text):
    """{(METHOD, path): section text} for every '### METHOD /path' heading;
    a section ends at the next heading of level 1 to 3."""
    sections, current, lines = {}, None, []
    for line in text.splitlines():
        if re.match(r"^#{1,3} ", line):
            if current:
                assert current not in sections, f"two sections for {current}"
                sections[current] = "\n".join(lines)
            m = HEADING.match(line)
            current, lines = ((m.group(1), m.group(2)) if m else None), []
        elif current:
            lines.append(line)
    if current:
        sections[current] = "\n".join(lines)
    return sections


def table_first_cells(section, header):
    """The backticked names in the first cell of each row of the tables whose
    header's first cell is `header` (a cell may name several: `a`, `b`)."""
    names, in_table, skip = [], False, 0
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") \
            else None
        if cells is None:
            in_table = False
            continue
        if not in_table:
            in_table = cells[0] == header
            skip = 1  # the |---| line
            continue
        if skip:
            skip -= 1
            continue
        names.append(cells[0])
    return names


def test_every_operation_is_documented_and_nothing_else():
    documented = set(doc_sections(load_doc()))
    spec = set(spec_operations(load_spec()))
    assert documented == spec, {"not documented": sorted(spec - documented),
                                "documented but not in openapi.json": sorted(documented - spec)}


def test_parameters_and_statuses_of_every_section_match_openapi():
    spec = load_spec()
    sections = doc_sections(load_doc())
    problems = []
    for (method, path), op in sorted(spec_operations(spec).items()):
        section = sections.get((method, path))
        if section is None:
            continue  # reported by the test above
        where = f"{method} {path}"
        want = spec_parameters(spec, path, op)
        got = set()
        for cell in table_first_cells(section, "parameter"):
            got |= set(re.findall(r"`([^`]+)`", cell))
        if got != want:
            problems.append(f"{where}: parameters missing {sorted(want - got)}, "
                            f"extra {sorted(got - want)}")
        want_codes = {c for c in op["responses"] if c != "default"}
        got_codes = set()
        for cell in table_first_cells(section, "status"):
            got_codes |= set(re.findall(r"\b[1-5]\d\d\b", cell))
        if got_codes != want_codes:
            problems.append(f"{where}: statuses missing {sorted(want_codes - got_codes)}, "
                            f"extra {sorted(got_codes - want_codes)}")
        if "```sh" not in section or "\n→ " not in section:
            problems.append(f"{where}: no curl example with its answer")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# The examples, run against a live stack.

def parse_examples(text):
    """[{command, status, kind, body, auth, wait_idle, line}] in document order."""
    lines = text.splitlines()
    examples, i, auth, wait = [], 0, False, False
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            auth = line.strip() == AUTH_SECTION
        if line.strip() == WAIT_IDLE:
            wait = True
        if line.strip() != "```sh":
            i += 1
            continue
        start = i + 1
        end = lines.index("```", start)
        command = "\n".join(lines[start:end]).strip()
        i = end + 1
        if not command.startswith("curl "):
            continue
        while i < len(lines) and not lines[i].strip():
            i += 1
        m = re.match(r"^→ (\d{3})\b", lines[i]) if i < len(lines) else None
        assert m, f"docs/api.md:{start}: a curl example must be followed by '→ <status>'"
        ex = {"command": command, "status": int(m.group(1)), "kind": None, "body": None,
              "auth": auth, "wait_idle": wait, "line": start}
        wait = False
        i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i < len(lines) and lines[i].strip() in ("```json", "```text"):
            end = lines.index("```", i + 1)
            ex["kind"] = lines[i].strip()[3:]
            ex["body"] = "\n".join(lines[i + 1:end])
            i = end + 1
        examples.append(ex)
    return examples


def placeholder_table(text):
    m = re.search(r"^\| placeholder \|.*?\n\|[-| ]+\|\n((?:\|.*\n)+)", text, re.M)
    assert m, "docs/api.md has no '| placeholder |' table"
    names = set()
    for row in m.group(1).splitlines():
        names |= set(re.findall(r"`\$(\w+)`", row.split("|")[1]))
    return names


def test_examples_are_well_formed():
    text = load_doc()
    examples = parse_examples(text)
    assert len(examples) >= 40, len(examples)
    used = set()
    for ex in examples:
        used |= set(re.findall(r"\$\{?(\w+)", ex["command"]))
        if ex["kind"] == "json":
            try:
                json.loads(ex["body"])
            except ValueError as e:
                pytest.fail(f"docs/api.md:{ex['line']}: the answer is not JSON: {e}")
    table = placeholder_table(text)
    unknown = used - set(RESOLVERS)
    assert not unknown, f"placeholders the test cannot set: {unknown}"
    assert used == table, {"used but not in the table": used - table,
                           "in the table but unused": table - used}


def one_value(dsn, sql, what, timeout=60.0):
    """The first column of the first row of sql, waiting until there is one."""
    deadline = time.monotonic() + timeout
    while True:
        rows = pg_query(dsn, sql)
        if rows and rows[0][0] is not None:
            return str(rows[0][0])
        assert time.monotonic() < deadline, f"no {what} within {timeout}s ({sql})"
        time.sleep(0.2)


BASELINES_1 = (f"FROM model_versions WHERE machine_id = '{MACHINE_1}' "
               "AND model_type = 'baseline' ORDER BY version DESC")
RESOLVERS = {
    "ENMS": None,  # the API's base URL (the token API's under ## Authentication)
    "ENMS_API_TOKEN": None,
    "JOB_ID": "SELECT id FROM model_training_history WHERE job_kind = 'train' "
              "ORDER BY created_at DESC, id LIMIT 1",
    "FAILED_JOB_ID": "SELECT id FROM model_training_history WHERE training_status = 'failed' "
                     "ORDER BY created_at DESC, id LIMIT 1",
    "MODEL_A_ID": f"SELECT id {BASELINES_1} OFFSET 1 LIMIT 1",
    "MODEL_B_ID": f"SELECT id {BASELINES_1} LIMIT 1",
    "TEST_ID": "SELECT id FROM model_ab_tests ORDER BY created_at DESC, id LIMIT 1",
    "ALERT_ID": "SELECT id FROM model_alerts ORDER BY alert_timestamp DESC, id LIMIT 1",
    "ANOMALY_ID": "SELECT id FROM anomalies ORDER BY created_at DESC, id LIMIT 1",
    "NEXT_HOUR": "SELECT to_char((max(ts) + interval '1 hour') AT TIME ZONE 'UTC', "
                 f"'YYYY-MM-DD\"T\"HH24:00:00\"Z\"') FROM energy_readings "
                 f"WHERE machine_id = '{MACHINE_1}'",
}


def wait_idle(dsn, timeout=180.0):
    deadline = time.monotonic() + timeout
    while pg_query(dsn, "SELECT count(*) FROM model_training_history "
                        "WHERE training_status IN ('pending', 'running')")[0][0]:
        assert time.monotonic() < deadline, f"jobs still active after {timeout}s"
        time.sleep(0.2)


def masked(value):
    return UUID.sub("<id>", value) if isinstance(value, str) else value


def keys_problems(doc, got, where, top=True):
    """The documented answer's keys must be the real one's: all of them at
    the top level, the documented ones deeper down (an example may shorten a
    nested object). Lists are compared by their first element."""
    if isinstance(doc, dict) and isinstance(got, dict):
        problems = []
        missing, extra = set(doc) - set(got), set(got) - set(doc)
        if missing or (top and extra):
            problems.append(f"{where}: keys missing from the answer {sorted(missing)}"
                            + (f", not documented {sorted(extra)}" if top else ""))
        for k in set(doc) & set(got):
            problems += keys_problems(doc[k], got[k], f"{where}.{k}", False)
        return problems
    if isinstance(doc, list) and isinstance(got, list) and doc and got:
        return keys_problems(doc[0], got[0], f"{where}[0]", top)
    return []


@pytest.fixture(scope="module")
def stack(module_spawn, module_db, redis_url, bin_dir):
    run_ctl(bin_dir, module_db, "seed", check=True)
    env = pipeline_env(module_db, redis_url)
    env.pop("ENMS_ENABLE_PROBE")  # as `make up`: real model types only
    api = start_api(module_spawn, env)
    start_worker(module_spawn, env, "docs-w1")
    token_api = start_api(module_spawn, dict(env, ENMS_API_TOKEN=TEST_API_TOKEN))
    return {"dsn": module_db, "base": api.base, "token_base": token_api.base}


def run_example(ex, stack):
    env = dict(os.environ, ENMS=stack["token_base"] if ex["auth"] else stack["base"],
               ENMS_API_TOKEN=TEST_API_TOKEN)
    for name in set(re.findall(r"\$\{?(\w+)", ex["command"])) - {"ENMS", "ENMS_API_TOKEN"}:
        env[name] = one_value(stack["dsn"], RESOLVERS[name], name)
    # An event stream never ends by itself: read it for two seconds.
    limit = "2" if re.search(r"^curl -\w*N", ex["command"]) else "60"
    script = ex["command"] + f" --max-time {limit} -w '\\n%{{http_code}}'"
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=90)
    body, _, status = proc.stdout.rpartition("\n")
    return int(status or 0), body, env


def check_answer(ex, status, body):
    where = f"docs/api.md:{ex['line']} ({ex['command'][:90]})"
    problems = []
    if status != ex["status"]:
        return [f"{where}: answered {status}, the doc shows {ex['status']}: {body[:300]}"]
    if ex["kind"] == "json":
        try:
            got = json.loads(body)
        except ValueError:
            return [f"{where}: the answer is not JSON: {body[:300]}"]
        doc = json.loads(ex["body"])
        problems += keys_problems(doc, got, where)
        if isinstance(doc, dict) and "detail" in doc and isinstance(got, dict):
            if masked(doc["detail"]) != masked(got.get("detail")):
                problems.append(f"{where}: detail {got.get('detail')!r}, "
                                f"the doc shows {doc['detail']!r}")
    elif ex["kind"] == "text":
        # The fixed lines (metric names, the stream's opening) must appear.
        for line in ex["body"].splitlines():
            if line.startswith(("# HELP", "# TYPE", "retry:", ": ")) and line not in body:
                problems.append(f"{where}: line {line!r} not in the answer: {body[:300]}")
    return problems


def test_every_curl_example_runs_against_the_stack(stack):
    problems = []
    examples = parse_examples(load_doc())
    for ex in examples:
        if ex["wait_idle"]:
            wait_idle(stack["dsn"])
        status, body, _ = run_example(ex, stack)
        if os.environ.get("ENMS_DOCS_CAPTURE"):
            with open(os.environ["ENMS_DOCS_CAPTURE"], "a", encoding="utf-8") as f:
                f.write(json.dumps({"line": ex["line"], "status": status, "body": body}) + "\n")
        problems += check_answer(ex, status, body)
    assert not problems, f"{len(problems)} of {len(examples)} examples disagree:\n" + \
        "\n".join(problems)
