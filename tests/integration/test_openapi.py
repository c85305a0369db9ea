"""The OpenAPI document (web/openapi.json, served at /openapi.json) against
the routes the server really has: `enms-api --routes` prints the route
table the server installs, and every operation is probed on a running API
(it must reach its handler: no catch-all 404, no 405, no 501)."""
import json
import os
import re
import subprocess

import pytest
import requests

from pipeline import pipeline_env, start_api

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(ROOT, "web", "openapi.json")
METHODS = {"get", "post", "put", "patch", "delete"}
# Served by the static file handler, not by the route table.
STATIC = {("GET", "/openapi.json")}


def load_spec():
    with open(SPEC_PATH, encoding="utf-8") as f:
        return json.load(f)


def spec_operations(spec):
    return {(m.upper(), path) for path, item in spec["paths"].items()
            for m in item if m in METHODS}


def server_routes(bin_dir):
    out = subprocess.run([os.path.join(bin_dir, "enms-api"), "--routes"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    routes = {tuple(line.split(" ", 1)) for line in out.splitlines() if line.strip()}
    assert len(routes) >= 20, out
    return routes


def test_every_route_is_documented_and_nothing_else(bin_dir):
    spec = load_spec()
    documented = spec_operations(spec) - STATIC
    served = server_routes(bin_dir)
    assert documented == served, {"undocumented": sorted(served - documented),
                                  "not served": sorted(documented - served)}


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = spec
        for part in ref[2:].split("/"):
            assert part in target, f"dangling $ref {ref}"
            target = target[part]
        node = target
    return node


def walk_refs(spec, node):
    if isinstance(node, dict):
        if "$ref" in node:
            resolve(spec, node)
        for v in node.values():
            walk_refs(spec, v)
    elif isinstance(node, list):
        for v in node:
            walk_refs(spec, v)


def test_document_is_well_formed():
    spec = load_spec()
    assert re.match(r"^3\.(0|1)\.\d+$", spec["openapi"])
    assert spec["info"]["title"] and spec["info"]["version"]
    walk_refs(spec, spec)
    op_ids = set()
    for path, item in spec["paths"].items():
        templated = set(re.findall(r"{(\w+)}", path))
        for method, op in item.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            assert op.get("summary"), where
            assert op.get("operationId") and op["operationId"] not in op_ids, where
            op_ids.add(op["operationId"])
            params = [resolve(spec, p) for p in op.get("parameters", []) + item.get("parameters", [])]
            for p in params:
                assert p["in"] in {"query", "path", "header"}, where
                assert "schema" in p, (where, p["name"])
            in_path = {p["name"] for p in params if p["in"] == "path"}
            assert in_path == templated, (where, in_path, templated)
            responses = op["responses"]
            assert any(code.startswith("2") for code in responses), where
            for code, resp in responses.items():
                resp = resolve(spec, resp)
                assert resp.get("description"), (where, code)
                if code.startswith(("4", "5")) and code != "default":
                    content = resp.get("content", {})
                    assert "application/json" in content, (where, code)


@pytest.fixture
def api(spawn, migrated_db, redis_url):
    return start_api(spawn, pipeline_env(migrated_db, redis_url))


def test_served_document_matches_file_and_every_operation_reaches_a_handler(api):
    r = requests.get(f"{api.base}/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.json() == load_spec()
    zero = "00000000-0000-4000-8000-000000000000"
    for method, path in sorted(spec_operations(load_spec()) - STATIC):
        if path == "/api/v1/events":
            continue  # an event stream stays open; tests/integration/test_api_events.py covers it
        url = api.base + re.sub(r"{\w+}", zero, path)
        resp = requests.request(method, url, timeout=10)
        where = f"{method} {path} -> {resp.status_code} {resp.text[:200]}"
        assert resp.status_code not in (405, 501), where
        if resp.status_code == 404:
            assert "no such endpoint" not in resp.json()["detail"], where
        # JSON everywhere, except where the spec says the success body is
        # something else (/metrics: the Prometheus text format).
        op = load_spec()["paths"][path][method.lower()]
        media = list(resolve(load_spec(), op["responses"].get(str(resp.status_code), {}))
                     .get("content", {"application/json": {}}))
        assert any(resp.headers.get("Content-Type", "").startswith(m.split(";")[0])
                   for m in media), where


def test_every_documented_query_parameter_is_known_to_the_server(api):
    # A documented field the server does not declare would be refused as
    # "<name>: unknown field". The value (a NUL byte) is refused as text by
    # every field type, so nothing is ever written by this probe.
    spec = load_spec()
    zero = "00000000-0000-4000-8000-000000000000"
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in METHODS or (method.upper(), path) in STATIC:
                continue
            if path == "/api/v1/events":
                continue
            url = api.base + re.sub(r"{\w+}", zero, path)
            for p in (resolve(spec, x) for x in op.get("parameters", [])):
                if p["in"] != "query":
                    continue
                resp = requests.request(method, f"{url}?{p['name']}=%00", timeout=10)
                where = f"{method.upper()} {path} ?{p['name']} -> {resp.status_code} {resp.text[:200]}"
                assert resp.status_code == 400, where
                assert "unknown field" not in resp.json()["detail"], where
                checked += 1
    assert checked >= 60, checked
