"""The bad-input catalogue (issue 8): every operation in web/openapi.json is
sent a table of bad requests generated from its own schema (so a new
endpoint is covered as soon as it is documented): missing required fields,
wrong types, null, huge, negative and non-finite numbers, unknown enum
values, malformed UUIDs in the path, query and body, over-long and invalid
UTF-8 text, SQL and shell metacharacters in typed fields, unknown fields
(refused, as docs/api.md says), non-object, empty, deep and oversized
bodies, bad query strings and wrong methods; the static file handler gets
path tricks. Each answer must be 4xx (400 for a bad field, 413 over the body cap,
as docs/api.md promises), JSON with a `detail` string under /api, the API
(the sanitizer build the harness provides) must stay up, and no table's row
count and no Redis key under the test's prefix may change.

One API process serves the whole module; its log is checked at the end for
sanitizer reports (and by module_spawn for non-JSON lines)."""
import json
import os
import re
import socket
import uuid

import pytest
import requests

from conftest import pg_query
from pipeline import add_machine, pipeline_env, redis_client, start_api

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(ROOT, "web", "openapi.json")
METHODS = ("get", "post", "put", "patch", "delete")
# Fewest generated cases any operation may have: the coverage test fails
# below it, naming the operation.
MIN_CASES = 4
# ENMS_HTTP_MAX_BODY's default (docs/operations.md); POST /api/v1/readings
# has a cap of its own (api/routes_readings.c, READINGS_BODY_MAX).
MAX_BODY = 64 * 1024
BODY_CAPS = {"/api/v1/readings": 4 << 20}

SQL = "'; DROP TABLE machines;--"
SHELL = "$(reboot)`id`|;&"
TIME_OK = "2026-01-02T03:04:05Z"
TIME_LATER = "2026-01-09T03:04:05Z"  # for the end of a window: after TIME_OK

with open(SPEC_PATH, encoding="utf-8") as _f:
    SPEC = json.load(_f)


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def operations():
    return sorted((m.upper(), path) for path, item in SPEC["paths"].items()
                  for m in item if m in METHODS)


def op_of(method, path):
    return SPEC["paths"][path][method.lower()]


class Case:
    """One bad request. body is bytes or None; query a raw (already encoded)
    query string or None; expect a status or a tuple of allowed statuses;
    field, when set, is what the 400's detail must start with."""

    def __init__(self, name, method, path, query=None, body=None, expect=400, field=None):
        self.name, self.method, self.path = name, method, path
        self.query, self.body, self.expect, self.field = query, body, expect, field


def enc(value):
    return requests.utils.quote(value, safe="")


def qs(pairs):
    """pairs: [(key, raw-encoded value)] -> query string."""
    return "&".join(f"{k}={v}" for k, v in pairs)


# --- valid values, used for the fields a case does not break ---------------

def valid_value(name, schema, machine):
    """A valid JSON value for a field by its schema (the seeded machine for
    machine ids, so a bad field is never hidden behind a 404)."""
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if schema.get("format") == "uuid":
        return machine if name == "machine_id" else str(uuid.uuid4())
    if schema.get("format") == "date-time":
        return TIME_LATER if name.endswith(("_end", "until")) else TIME_OK
    if t == "integer":
        return schema.get("default", schema.get("minimum", 1))
    if t == "number":
        return schema.get("default", schema.get("minimum", 1))
    if t == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("type") == "number":
            return {"r_squared": 0.5}  # a map of name to number (metrics)
        return {}
    if t == "boolean":
        return True
    if "pattern" in schema:
        for candidate in ("r_squared", "abc", "a"):
            if re.search(schema["pattern"], candidate):
                return candidate
    return "test"


def as_query_text(value):
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


# --- bad values by type ----------------------------------------------------

def bad_json_values(schema):
    """(label, raw JSON text) pairs that the field's type must refuse.
    Raw text, because NaN, Infinity and 1e309 are not valid JSON and no
    encoder writes them."""
    schema = resolve(schema)
    t = schema.get("type")
    out = [("nan", "NaN"), ("infinity", "Infinity"), ("-infinity", "-Infinity"),
           ("1e309", "1e309"), ("array", "[1]"), ("true", "true")]
    if "enum" in schema:
        out += [("unknown enum", '"no_such_value"'), ("enum wrong case",
                json.dumps(schema["enum"][0].upper())), ("enum empty", '""'),
                ("enum sql", json.dumps(SQL)), ("enum shell", json.dumps(SHELL)),
                ("number for enum", "1")]
    elif schema.get("format") == "uuid":
        out += [("uuid short", '"00000000-0000-4000-8000-00000000000"'),
                ("uuid non-hex", '"00000000-0000-4000-8000-00000000000g"'),
                ("uuid braces", '"{00000000-0000-4000-8000-000000000000}"'),
                ("uuid no dashes", '"00000000000040008000000000000000"'),
                ("uuid sql", json.dumps(SQL)), ("uuid shell", json.dumps(SHELL)),
                ("uuid NUL", '"00000000-0000-4000-8000-\\u0000000000000"'),
                ("number for uuid", "1")]
    elif schema.get("format") == "date-time":
        out += [("time month 13", '"2026-13-01"'), ("time words", '"yesterday"'),
                ("time sql", json.dumps(SQL)), ("time year 99999", '"99999-01-01"'),
                ("time hour 25", '"2026-01-01T25:00:00Z"'), ("number for time", "1")]
    elif t == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        out += [("1e308", "1e308"), ("2^63", str(2 ** 63)), ("-2^63-1", str(-2 ** 63 - 1)),
                ("fraction", "1.5"), ("digits and text", '"12abc"'), ("int sql", json.dumps(SQL)),
                ("int shell", json.dumps(SHELL)), ("hex", '"0x10"'), ("empty", '""')]
        if lo is not None:
            out += [("below minimum", str(lo - 1)), ("-1", "-1") if lo > -1 else ("-2^62", str(-2 ** 62))]
        if hi is not None:
            out += [("above maximum", str(hi + 1))]
    elif t == "number":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        out += [("number text", '"abc"'), ("number sql", json.dumps(SQL)),
                ("number nan text", '"nan"'), ("number inf text", '"inf"'),
                ("number hex text", '"0x1p3"'), ("1e309 text", '"1e309"')]
        if lo is not None:
            out += [("below minimum", repr(lo - 1.0)), ("-1e308", "-1e308")]
        if hi is not None:
            out += [("above maximum", repr(hi + 1.0)), ("1e308", "1e308"), ("2^63", str(2 ** 63))]
    elif t == "object":
        out += [("string for object", '"x"'), ("number for object", "1")]
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("type") == "number":
            # A map of any name to a number: bad values, not bad names.
            out += [("map string value", '{"r_squared": "x"}'), ("map NaN value", '{"r_squared": NaN}'),
                    ("map null value", '{"r_squared": null}'), ("map 1e309 value", '{"r_squared": 1e309}'),
                    ("map empty", "{}")]
        else:
            out += [("object unknown key", '{"no_such_key": 1}')]
    elif t == "string":
        out += [("number for string", "1"), ("object for string", '{"a": 1}'),
                ("NUL in string", '"a\\u0000b"'), ("lone surrogate", '"\\ud800"')]
        if "maxLength" in schema:
            n = schema["maxLength"] + 1
            out += [("over maxLength", json.dumps("x" * n)),
                    ("over maxLength in characters", json.dumps("\u00e9" * n, ensure_ascii=False))]
        if "pattern" in schema:
            out += [("pattern sql", json.dumps(SQL)), ("pattern shell", json.dumps(SHELL))]
    return out


def bad_query_values(schema):
    """Raw (percent-encoded) query values the field's type must refuse."""
    schema = resolve(schema)
    t = schema.get("type")
    out = [("NUL", "%00"), ("invalid UTF-8", "%FF%FE"), ("overlong UTF-8", "%C0%AF"),
           ("bad escape", "%zz")]
    if "enum" in schema:
        out += [("unknown enum", "no_such_value"), ("enum sql", enc(SQL)), ("enum shell", enc(SHELL)),
                ("enum empty", "")]
    elif schema.get("format") == "uuid":
        out += [("uuid malformed", "not-a-uuid"), ("uuid sql", enc(SQL)), ("uuid shell", enc(SHELL)),
                ("uuid too long", "0" * 37), ("uuid empty", "")]
    elif schema.get("format") == "date-time":
        out += [("time words", "yesterday"), ("time sql", enc(SQL)), ("time empty", "")]
    elif t == "integer":
        out += [("1e309", "1e309"), ("2^63", str(2 ** 63)), ("int sql", enc(SQL)),
                ("int shell", enc(SHELL)), ("NaN", "NaN"), ("int empty", "")]
        if schema.get("minimum") is not None:
            out += [("below minimum", str(schema["minimum"] - 1))]
        if schema.get("maximum") is not None:
            out += [("above maximum", str(schema["maximum"] + 1))]
    elif t == "number":
        out += [("1e309", "1e309"), ("nan", "nan"), ("Infinity", "Infinity"),
                ("number sql", enc(SQL)), ("number empty", "")]
        if schema.get("maximum") is not None:
            out += [("above maximum", repr(schema["maximum"] + 1.0))]
    elif t == "string" and "maxLength" in schema:
        out += [("over maxLength", "x" * (schema["maxLength"] + 1))]
    elif t == "string" and "pattern" in schema:
        out += [("pattern sql", enc(SQL))]
    return out


# --- the catalogue ---------------------------------------------------------

def body_schema(op):
    """The request body's object schema and whether it is the readings
    batch (an object {"readings": [...]} or a bare array of readings)."""
    rb = op.get("requestBody")
    if not rb:
        return None
    schema = resolve(rb["content"]["application/json"]["schema"])
    if "oneOf" in schema:
        for alt in schema["oneOf"]:
            alt = resolve(alt)
            if alt.get("type") == "array":
                return resolve(alt["items"])
    return schema


def cases_for(method, path, machine):
    """Every bad request for one operation, generated from its spec."""
    op = op_of(method, path)
    params = [resolve(p) for p in op.get("parameters", [])]
    path_params = [p for p in params if p["in"] == "path"]
    query_params = [p for p in params if p["in"] == "query"]
    required = [p for p in query_params if p.get("required")]
    is_api = path.startswith("/api/")
    cases = []
    zero = "00000000-0000-4000-8000-000000000000"

    def url_with(values=None):
        values = values or {}
        return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), zero), path)

    # Wrong methods: every operation has some.
    allowed = {m.upper() for m in SPEC["paths"][path] if m in METHODS}
    for wrong in ("PUT", "DELETE", "PATCH", "POST", "GET"):
        if wrong not in allowed and len([c for c in cases if c.name.startswith("method")]) < 4:
            # civetweb's file handler answers PUT/DELETE on a file with 401.
            cases.append(Case(f"method {wrong}", wrong, url_with(),
                              expect=(404, 405) if is_api else (401, 403, 404, 405)))

    # Malformed ids in the path.
    for p in path_params:
        for label, raw in [("not a uuid", "not-a-uuid"), ("sql", enc(SQL)), ("shell", enc(SHELL)),
                           ("NUL", "%00"), ("37 chars", "0" * 37), ("non-hex", zero[:-1] + "g"),
                           ("invalid UTF-8", "%FF"), ("dots", "..%2F..%2Fetc%2Fpasswd"),
                           ("braces", "%7B" + zero + "%7D")]:
            cases.append(Case(f"path {p['name']} {label}", method, url_with({p["name"]: raw}),
                              expect=(400, 404)))

    # The query string.
    base_q = {p["name"]: valid_value(p["name"], p["schema"], machine) for p in required}
    base_pairs = [(k, enc(as_query_text(v))) for k, v in base_q.items()]
    # Operations that declare no query field do not read the query string
    # (docs/api.md's field rules apply to declared fields), so only those
    # that declare some get the query-string cases.
    if query_params:
        cases += [
            Case("query unknown field", method, url_with(), query=qs(base_pairs + [("colour", "red")]),
                 field="colour"),
            Case("query sql as key", method, url_with(), query=qs(base_pairs + [(enc(SQL), "1")])),
            Case("query too many pairs", method, url_with(),
                 query=qs(base_pairs + [(f"k{i}", "1") for i in range(40)])),
            Case("query over 8 KiB", method, url_with(),
                 query=qs(base_pairs + [("colour", "x" * 9000)]), expect=(400, 414)),
            Case("query key invalid UTF-8", method, url_with(), query=qs(base_pairs + [("%FF", "1")])),
        ]
    for p in required:
        rest = [(k, v) for k, v in base_pairs if k != p["name"]]
        if body_schema(op) is None or p["name"] in (body_schema(op) or {}).get("properties", {}):
            cases.append(Case(f"missing required {p['name']}", method, url_with(), query=qs(rest),
                              field=p["name"]))
    for p in query_params:
        rest = [(k, v) for k, v in base_pairs if k != p["name"]]
        for label, raw in bad_query_values(p["schema"]):
            cases.append(Case(f"query {p['name']} {label}", method, url_with(),
                              query=qs(rest + [(p["name"], raw)]), field=p["name"]))
        if p.get("required") or p["schema"].get("type") != "object":
            value = base_q.get(p["name"], valid_value(p["name"], p["schema"], machine))
            cases.append(Case(f"query {p['name']} given twice", method, url_with(),
                              query=qs(rest + [(p["name"], enc(as_query_text(value)))] * 2),
                              field=p["name"]))

    # The JSON body.
    schema = body_schema(op)
    if schema is not None:
        readings = path == "/api/v1/readings"
        props = schema.get("properties", {})
        cap = BODY_CAPS.get(path, MAX_BODY)
        # The fields in the body, except required ones that the body schema
        # does not declare (those stay in the query string).
        base_b = {k: v for k, v in base_q.items() if k in props}
        # Body-only maps (the metrics of metrics/record) are what makes a
        # body the new clients' form: give them a valid value too.
        query_names = {p["name"] for p in query_params}
        base_b.update({k: valid_value(k, v, machine) for k, v in props.items()
                       if k not in query_names and isinstance(v.get("additionalProperties"), dict)})
        body_q = qs([(k, v) for k, v in base_pairs if k not in props])
        if readings:
            base_b = {p: valid_value(p, props[p], machine) for p in schema.get("required", [])}

        def wrap(fields_text):
            """A body from `"key": raw` fragments."""
            obj = "{" + ", ".join(fields_text) + "}"
            return ('{"readings": [' + obj + "]}" if readings else obj).encode()

        def frag(k, v):
            return f"{json.dumps(k)}: {v}"

        def body_case(name, raw, expect=400, field=None):
            cases.append(Case(name, method, url_with(), query=body_q or None, body=raw,
                              expect=expect, field=field))

        fld = (lambda k: None) if readings else (lambda k: k)
        for name, prop in props.items():
            rest = [frag(k, json.dumps(v)) for k, v in base_b.items() if k != name]
            for label, raw in bad_json_values(prop):
                body_case(f"body {name} {label}", wrap(rest + [frag(name, raw)]), field=fld(name))
            body_case(f"body {name} invalid UTF-8",
                      wrap(rest + [frag(name, '"@@BAD@@"')]).replace(b"@@BAD@@", b"a\xc3\x28b"))
            body_case(f"body {name} given twice",
                      wrap(rest + [frag(name, json.dumps(valid_value(name, prop, machine)))] * 2),
                      field=fld(name))
            if name in base_b and not readings:
                body_case(f"body {name} null (required)", wrap(rest + [frag(name, "null")]),
                          field=name)
            if readings and name in base_b:
                body_case(f"body {name} missing", wrap(rest))
            if name in base_q and not readings:
                # Given in both the query string and the body.
                cases.append(Case(f"body {name} also in query", method, url_with(),
                                  query=qs(base_pairs), body=wrap([frag(k, json.dumps(v))
                                                                   for k, v in base_b.items()]),
                                  field=name))
        all_ok = [frag(k, json.dumps(v)) for k, v in base_b.items()]
        body_case("body unknown field", wrap(all_ok + [frag("colour", '"red"')]),
                  field=None if readings else "colour")
        body_case("body sql as key", wrap(all_ok + [frag(SQL, "1")]))
        for label, raw in [("array", b"[]"), ("string", b'"x"'), ("number", b"1"), ("null", b"null"),
                           ("true", b"true"), ("truncated", b'{"a": '), ("trailing garbage", b"{} x"),
                           ("NaN", b"NaN"), ("single quotes", b"{'a': 1}"),
                           ("invalid UTF-8", b'{"\xff": 1}'),
                           ("comment", b"/* x */ {}"), ("NUL byte", b"{\x00}")]:
            if readings and label == "array":
                continue  # an empty array is a batch of none: refused, but by the batch rule
            body_case(f"body is {label}", raw, expect=(400, 413))
        if readings:
            body_case("body is empty array", b"[]")
        deep = b"[" * 30000 + b"]" * 30000
        body_case("body nested 30000 deep", deep, expect=(400, 413))
        body_case("field nested 64 deep", wrap(all_ok + [frag("x", "[" * 64 + "]" * 64)]))
        body_case("body over the cap", b'{"x": "' + b"a" * (cap + 16) + b'"}', expect=413)
        if readings or required:
            body_case("body empty", b"", expect=(400, 411))
    return cases


def static_cases():
    """(name, raw request target) for the static file handler."""
    return [("dot-dot", "/../etc/passwd"), ("encoded dot-dot", "/%2e%2e/%2e%2e/etc/passwd"),
            ("double slash", "//etc/passwd"), ("web dot-dot", "/web/..%2f..%2fetc%2fpasswd"),
            ("css dot-dot", "/css/../../../../etc/passwd"), ("backslash", "/..\\..\\etc\\passwd"),
            ("NUL", "/index.html%00.json"), ("NUL in dir", "/%00/etc/passwd"),
            ("NUL after dir", "/web%00/index.html"), ("NUL in api path", "/api/v1/jobs%00.json"),
            ("NUL before query", "/index.html%00?x=1"), ("NUL after escape", "/%69ndex.html%00.json"),
            ("NUL escape at end", "/api/v1/%6Aobs%00"),
            ("overlong dot", "/%c0%ae%c0%ae/etc/passwd"), ("very long", "/" + "a" * 20000),
            ("no such file", "/no-such-file.js"), ("api dot-dot", "/api/v1/../../../etc/passwd"),
            ("source", "/../api/main.c"), ("git", "/../.git/config")]


ALL_OPS = operations()
CASES = {}  # filled per machine id in the fixture; counted for coverage below
EXERCISED = set()


def count_cases():
    return {op: len(cases_for(*op, machine="c0000000-0000-0000-0000-0000000000aa")) for op in ALL_OPS}


# --- running -----------------------------------------------------------------

@pytest.fixture(scope="module")
def api(module_spawn, module_db, redis_url):
    machine = add_machine(module_db)
    env = pipeline_env(module_db, redis_url)
    proc = start_api(module_spawn, env)
    proc.machine = machine
    proc.dsn = module_db
    proc.prefix = env["ENMS_REDIS_PREFIX"]
    proc.redis = redis_client(redis_url)
    yield proc
    code = proc.stop()
    out = proc.output()
    assert "AddressSanitizer" not in out and "runtime error:" not in out, out[-4000:]
    assert code == 0, f"enms-api exited with {code}:\n{out[-4000:]}"


def state(api):
    tables = [r[0] for r in pg_query(api.dsn, "SELECT table_name FROM information_schema.tables "
                                              "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
                                              "ORDER BY 1")]
    assert len(tables) >= 5, tables
    counts = {t: pg_query(api.dsn, f'SELECT count(*) FROM "{t}"')[0][0] for t in tables}
    keys = {}
    r = api.redis
    for key in r.scan_iter(f"{api.prefix}*"):
        kind = r.type(key)
        size = {"list": r.llen, "hash": r.hlen, "set": r.scard, "zset": r.zcard,
                "string": r.strlen, "stream": r.xlen}.get(kind, lambda k: None)(key)
        keys[key] = (kind, size)
    return counts, keys


def send(api, case):
    # A raw request: an HTTP client library would re-encode a malformed
    # %-escape ("%zz" -> "%25zz") or normalise the path, hiding the case.
    return raw_request(api, case.method, case.path + (f"?{case.query}" if case.query is not None
                                                      else ""), case.body)


class RawAnswer:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.content = status, headers, body
        self.text = body.decode(errors="replace")

    def json(self):
        return json.loads(self.text)


def raw_request(api, method, target, body=None):
    """Sends the request line as given (no client-side normalisation of
    the path) and reads the whole answer."""
    host, port = api.base.rsplit("//", 1)[1].split(":")
    head = (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            f"Content-Length: {len(body or b'')}\r\nContent-Type: application/json\r\n\r\n")
    data = b""
    with socket.create_connection((host, int(port)), timeout=20) as s:
        # One write for head and body, and no Nagle delay.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.sendall(head.encode("latin-1") + (body or b""))
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    assert data, f"{method} {target[:80]}: no answer"
    head_text, _, rest = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()

    class H(dict):
        def get(self, k, d=None):
            return super().get(k.lower(), d)

    return RawAnswer(status, H(headers), rest)


def check_answer(case, resp):
    """Problems with one answer (empty when it is right)."""
    where = f"{case.method} {case.path[:80]} [{case.name}] -> {resp.status_code} {resp.text[:160]!r}"
    expect = case.expect if isinstance(case.expect, tuple) else (case.expect,)
    if resp.status_code not in expect:
        return [f"{where}: expected {expect}"]
    if not 400 <= resp.status_code < 500:
        return [f"{where}: not a 4xx"]
    if not case.path.startswith("/api/"):
        return []
    if not resp.headers.get("Content-Type", "").startswith("application/json"):
        return [f"{where}: Content-Type {resp.headers.get('Content-Type')}"]
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return [f"{where}: body is not JSON"]
    if not isinstance(detail, str) or not detail:
        return [f"{where}: no detail string"]
    if case.field == "colour" and "unknown field" not in detail:
        return [f"{where}: detail does not say unknown field"]
    return []


def health(api):
    assert api.proc.poll() is None, f"enms-api died:\n{api.output()[-4000:]}"
    r = requests.get(f"{api.base}/healthz", timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("op", ALL_OPS, ids=[f"{m} {p}" for m, p in ALL_OPS])
def test_bad_input_is_refused_and_writes_nothing(api, op):
    cases = cases_for(*op, machine=api.machine)
    assert len(cases) >= MIN_CASES, (op, len(cases))
    before = state(api)
    problems = []
    for case in cases:
        problems += check_answer(case, send(api, case))
    health(api)
    after = state(api)
    EXERCISED.add(op)
    changed = {t: (before[0][t], after[0].get(t)) for t in before[0] if before[0][t] != after[0].get(t)}
    changed.update({k: (before[1].get(k), after[1].get(k)) for k in set(before[1]) | set(after[1])
                    if before[1].get(k) != after[1].get(k)})
    assert not problems, f"{len(problems)} of {len(cases)} cases failed:\n" + "\n".join(problems[:40])
    assert not changed, f"bad input changed rows or Redis keys: {changed}"


def test_static_path_tricks_are_refused(api):
    problems = []
    for name, target in static_cases():
        r = raw_request(api, "GET", target)
        where = f"GET {target[:80]} [{name}] -> {r.status_code} {r.text[:120]!r}"
        if not 400 <= r.status_code < 500:
            problems.append(f"{where}: not a 4xx")
        elif "NUL" in name and (r.status_code != 400 or "NUL" not in r.text
                                or not r.headers.get("Content-Type", "").startswith("application/json")):
            # civetweb would cut the decoded path at the NUL and serve what
            # comes before it; api/access.c refuses any %00 in the path.
            problems.append(f"{where}: expected 400 naming the NUL")
        if b"root:" in r.content or b"[core]" in r.content or b"#include" in r.content:
            problems.append(f"{where}: file content leaked")
    health(api)
    assert not problems, "\n".join(problems)


def test_escaped_paths_without_nul_are_still_served(api):
    """The NUL check counts the NULs civetweb's in-place decoding leaves in
    its buffer (api/access.c); escapes that decode to anything else must not
    be taken for one."""
    for target, kind in [("/%69ndex.html", "text/html"), ("/index%2Ehtml?x=%00", "text/html"),
                         ("/api/v1/%6Aobs", "application/json"),
                         ("/api/v1/%6A%6F%62%73?limit=%32", "application/json")]:
        r = raw_request(api, "GET", target)
        assert r.status_code == 200, (target, r.status_code, r.text[:200])
        assert r.headers.get("Content-Type", "").startswith(kind), (target, r.headers)


def test_catalogue_spec_is_the_served_openapi(api):
    """The catalogue is generated from web/openapi.json; the API serves its
    spec at /openapi.json. Both must list the same operations, so "every
    endpoint in /openapi.json" is what the catalogue covers."""
    r = requests.get(f"{api.base}/openapi.json", timeout=10)
    assert r.status_code == 200, r.text[:200]
    served = sorted((m.upper(), path) for path, item in r.json()["paths"].items()
                    for m in item if m in METHODS)
    assert len(served) >= 20, served
    assert served == ALL_OPS, (f"only served: {sorted(set(served) - set(ALL_OPS))}, "
                               f"only in the file: {sorted(set(ALL_OPS) - set(served))}")


def test_every_operation_has_a_catalogue_and_was_exercised():
    """Runs last in this module: every (method, path) in the spec must have
    at least MIN_CASES generated cases and have been sent them above."""
    counts = count_cases()
    thin = {f"{m} {p}": n for (m, p), n in counts.items() if n < MIN_CASES}
    assert not thin, f"operations with fewer than {MIN_CASES} bad-input cases: {thin}"
    missing = sorted(f"{m} {p}" for m, p in ALL_OPS if (m, p) not in EXERCISED)
    assert not missing, f"operations not exercised by the catalogue: {missing}"
    total = sum(counts.values()) + len(static_cases())
    print(f"bad-input catalogue: {total} cases over {len(ALL_OPS)} operations")
    assert total >= 20 * len(ALL_OPS), total
