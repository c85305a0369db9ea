"""The deployment files say what the code does: compose.yaml validates with
Debian's docker-compose and keeps its invariants, the Dockerfile builds through
the Makefile with the packages scripts/deps.sh lists, the systemd units pass
`systemd-analyze verify`, deploy/enms.env.example names only real settings, and
docs/operations.md points at real files, commands and variables.

No Docker engine runs here, so the image is never built: what can be checked
without one is checked against the Makefile, deps.sh and the built binaries."""
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest
import redis as redis_lib
import yaml

from conftest import ROOT

COMPOSE = os.path.join(ROOT, "compose.yaml")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
SYSTEMD = os.path.join(ROOT, "deploy", "systemd")
ENV_EXAMPLE = os.path.join(ROOT, "deploy", "enms.env.example")
HEALTHCHECK = os.path.join(ROOT, "deploy", "enms-worker-healthcheck")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")
UNITS = ["enms-api.service", "enms-migrate.service", "enms-worker@.service"]
# The one setting enms.env has and compose must not pass through: one value
# for every replica would give them all the same worker id (<host>-<pid>).
ENV_ONLY_OUTSIDE_COMPOSE = {"ENMS_WORKER_HOST"}


def _tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed: make deps installs it")
    return path


def _compose(tmp_path, *args, token="test-token"):
    """docker-compose on compose.yaml with a clean environment (the suite's
    ENMS_* variables would otherwise leak into the pass-through settings)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    if token is not None:
        env["ENMS_API_TOKEN"] = token
    return subprocess.run([_tool("docker-compose"), "-f", COMPOSE, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose_cfg(tmp_path_factory):
    proc = _compose(tmp_path_factory.mktemp("compose"), "config")
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def _help_vars(bin_dir):
    """{name: default} of the configuration table `enms-api --help` prints."""
    text = subprocess.run([os.path.join(bin_dir, "enms-api"), "--help"], capture_output=True,
                          text=True, check=True).stdout
    found = dict(re.findall(r"^\s+(ENMS_[A-Z_]+)\s+(\S+)", text, re.M))
    assert found, text
    return found


@pytest.fixture(scope="module")
def make_binaries(tmp_path_factory):
    """Names of the binaries `make build` links, from the Makefile itself."""
    out = tmp_path_factory.mktemp("makebuild")
    text = subprocess.run(["make", "-n", f"BUILD={out}", "build"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    names = set(re.findall(r"-o " + re.escape(str(out)) + r"/bin/(\S+)", text))
    assert names, text
    return names, text


def _seconds(duration):
    """A compose duration ("45s", "1m30s", "1h") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------- compose ---

def test_compose_config_passes_with_token(tmp_path):
    proc = _compose(tmp_path, "config", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_compose_config_refuses_without_token(tmp_path):
    proc = _compose(tmp_path, "config", "-q", token=None)
    assert proc.returncode != 0
    assert "set ENMS_API_TOKEN" in proc.stderr, proc.stderr


def test_compose_redis_keeps_queues(compose_cfg):
    cmd = compose_cfg["services"]["redis"]["command"]
    cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
    opts = dict(zip(cmd[1::2], cmd[2::2]))
    assert cmd[0] == "redis-server"
    assert opts.get("--appendonly") == "yes", cmd
    assert opts.get("--appendfsync") in ("everysec", "always"), cmd
    assert opts.get("--maxmemory-policy") == "noeviction", cmd
    # The append-only file lives in /data, which must outlive the container.
    volumes = compose_cfg["services"]["redis"]["volumes"]
    assert any(v.split(":")[1] == "/data" for v in volumes), volumes
    assert all(v.split(":")[0] in compose_cfg["volumes"] for v in volumes), volumes


def test_compose_publishes_the_api_on_loopback_only(compose_cfg):
    services = compose_cfg["services"]
    ports = services["api"]["ports"]
    assert ports
    for p in ports:
        host_ip = p.split(":")[0] if isinstance(p, str) else p.get("host_ip")
        assert host_ip == "127.0.0.1", p
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"api"}


def test_compose_worker_scales_and_outlives_its_grace(compose_cfg):
    worker = compose_cfg["services"]["worker"]
    assert int(worker["deploy"]["replicas"]) >= 2
    grace = int(worker["environment"]["ENMS_SHUTDOWN_GRACE_S"])
    assert _seconds(worker["stop_grace_period"]) > grace
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    # No fixed host name or worker id: each replica must report its own.
    assert "hostname" not in worker and "container_name" not in worker
    assert not {"ENMS_WORKER_ID", "ENMS_WORKER_HOST"} & set(worker["environment"])


def test_compose_dependencies_wait_for_health(compose_cfg):
    services = compose_cfg["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), (name, deps)
        for dep, spec in deps.items():
            cond = spec.get("condition")
            assert cond in ("service_healthy", "service_completed_successfully"), (name, dep)
            if cond == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), dep
            else:
                assert services[dep].get("restart") == "no", dep
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
    assert services["migrate"]["command"][:2] == ["enmsctl", "migrate"]


def test_compose_long_running_services_have_healthchecks(compose_cfg):
    for name, svc in compose_cfg["services"].items():
        if svc.get("restart") == "no":
            continue  # one-shot
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name


def test_compose_runs_the_makefile_binaries_with_known_settings(compose_cfg, make_binaries,
                                                                bin_dir):
    names, _ = make_binaries
    known = _help_vars(bin_dir)
    for name, svc in compose_cfg["services"].items():
        if "build" not in svc:
            continue
        assert svc["command"][0] in names, (name, svc["command"])
        for var in svc.get("environment", {}):
            assert var in known, (name, var)
    hc = compose_cfg["services"]["worker"]["healthcheck"]["test"]
    assert hc[1] == os.path.basename(HEALTHCHECK)


# ------------------------------------------------------------- Dockerfile ---

def _dockerfile_stages():
    """[(stage name, [(INSTRUCTION, argument)])] with continuation lines joined."""
    text = open(DOCKERFILE).read()
    text = re.sub(r"\\\n", " ", text)
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", arg, re.I)
            stages.append((m.group(2) or m.group(1), [("FROM", m.group(1))]))
        else:
            stages[-1][1].append((instr, arg.strip()))
    return stages


def _apt_packages(run_arg):
    m = re.search(r"apt-get install ([^&;]+)", run_arg)
    return {w for w in m.group(1).split() if not w.startswith("-")} if m else set()


def _deps_section(title):
    text = open(os.path.join(ROOT, "scripts", "deps.sh")).read()
    body = re.search(r"PACKAGES=\((.*?)\n\)", text, re.S).group(1)
    m = re.search(r"#\s*" + re.escape(title) + r"\s*\n(.*?)(?:\n\s*#|\Z)", body, re.S)
    assert m, f"no '# {title}' section in scripts/deps.sh"
    return set(m.group(1).split())


def test_dockerfile_is_bookworm_multistage():
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    for _, instrs in stages:
        assert "bookworm" in instrs[0][1], instrs[0]
    runtime = stages[-1][1]
    assert stages[0][1][0][1].startswith("debian:bookworm")
    assert any(i == "USER" and a not in ("root", "0") for i, a in runtime)


def test_dockerfile_builds_through_the_makefile(make_binaries):
    names, dry_run = make_binaries
    build_name, build = _dockerfile_stages()[0]
    workdir = [a for i, a in build if i == "WORKDIR"][-1]
    runs = [a for i, a in build if i == "RUN"]
    make_runs = [r for r in runs if re.search(r"(^|&&|;)\s*make\s", r)]
    assert len(make_runs) == 1, runs
    words = shlex.split(re.split(r"&&|;", make_runs[0].split("make", 1)[1])[0])
    targets = [w for w in words if not w.startswith("-") and "=" not in w]
    assert targets == ["build"], words
    variables = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert set(variables) <= {"BUILD"}, variables  # no CC/CFLAGS of its own
    out = variables.get("BUILD", "build")
    # No compiler invoked behind the Makefile's back.
    for r in runs:
        assert not re.search(r"(^|\s|&&)(cc|gcc|clang|ld)\s", r), r
    # `make build` vendors Chart.js (web-assets is its prerequisite).
    assert "chart.min.js" in dry_run
    # The runtime stage takes the whole bin folder make wrote, so it ships
    # exactly what `make build` links; compose and systemd run those names.
    runtime = _dockerfile_stages()[-1][1]
    copies = [a for i, a in runtime if i == "COPY" and f"--from={build_name}" in a]
    bin_src = os.path.normpath(os.path.join(workdir, out, "bin")) + "/"
    bin_copy = [c for c in copies if c.split()[1] == bin_src]
    assert bin_copy and bin_copy[0].split()[2] == "/usr/local/bin/", copies
    web_src = os.path.normpath(os.path.join(workdir, "web"))
    assert any(c.split()[1] == web_src for c in copies), "web/ must come from the build stage"


def test_dockerfile_build_stage_has_the_deps_build_packages():
    build = _dockerfile_stages()[0][1]
    installed = set().union(*(_apt_packages(a) for i, a in build if i == "RUN"))
    missing = _deps_section("build") - installed
    assert not missing, f"Dockerfile build stage lacks {missing} (scripts/deps.sh '# build')"
    # The package that ships the Chart.js file the Makefile's web-assets copies.
    src = re.search(r"^CHARTJS_SRC\s*:=\s*(\S+)", open(os.path.join(ROOT, "Makefile")).read(),
                    re.M).group(1)
    owner = subprocess.run(["dpkg", "-S", src], capture_output=True, text=True, check=True)
    pkg = owner.stdout.split(":")[0]
    assert pkg in installed, f"{pkg} ({src}) not installed in the build stage"


def test_dockerfile_runtime_stage_has_each_linked_library_and_no_compiler(bin_dir):
    runtime = _dockerfile_stages()[-1][1]
    installed = set().union(*(_apt_packages(a) for i, a in runtime if i == "RUN"))
    for pkg in installed:
        assert not pkg.endswith("-dev"), pkg
        assert pkg not in ("build-essential", "gcc", "cpp", "make", "clang", "pkg-config"), pkg
    # The normal build beside the sanitizer one the suite runs (B/asan/bin -> B/bin).
    normal = os.path.normpath(os.path.join(bin_dir, "..", "..", "bin"))
    assert os.path.isfile(os.path.join(normal, "enms-api")), normal
    needed = set()
    for name in os.listdir(normal):
        if name.startswith("enms"):
            dyn = subprocess.run(["objdump", "-p", os.path.join(normal, name)],
                                 capture_output=True, text=True, check=True).stdout
            needed |= set(re.findall(r"NEEDED\s+(\S+)", dyn))
    assert needed
    ldcache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                             check=True).stdout
    for soname in needed:
        path = re.search(r"^\s+" + re.escape(soname) + r" \(.*?\) => (\S+)", ldcache, re.M)
        assert path, soname
        owner = subprocess.run(["dpkg", "-S", path.group(1)], capture_output=True, text=True)
        if owner.returncode != 0:  # /lib -> /usr/lib merged paths
            owner = subprocess.run(["dpkg", "-S", os.path.realpath(path.group(1))],
                                   capture_output=True, text=True, check=True)
        pkg = owner.stdout.split(":")[0]
        if pkg == "libc6":
            continue  # in every Debian base image
        assert pkg in installed, f"{soname} is in {pkg}, which the runtime stage lacks"


def test_dockerignore_keeps_every_build_input(make_binaries):
    _, dry_run = make_binaries
    patterns = [p.strip() for p in open(os.path.join(ROOT, ".dockerignore"))
                if p.strip() and not p.startswith("#")]
    sources = set(re.findall(r"-c (\S+\.c) ", dry_run))
    assert sources
    needed = sources | {"Makefile", "schema/001_core.sql", "web/index.html",
                        "deploy/enms-worker-healthcheck", "web/vendor/README.md"}

    def ignored(path):
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        return any(fnmatch.fnmatch(pre, pat.lstrip("/").replace("**/", "*"))
                   for pat in patterns for pre in prefixes)

    assert [p for p in needed if ignored(p)] == []
    # The generated vendor copies always come from the build stage's package.
    assert ignored("web/vendor/chart.min.js") and ignored("build/bin/enms-api")


# --------------------------------------------------------------- systemd ---

def _unit(name):
    """{key: [values]} of a unit file (all sections)."""
    keys = {}
    for line in open(os.path.join(SYSTEMD, name)):
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def _env_file():
    """(set values, commented defaults) of deploy/enms.env.example."""
    values, commented = {}, {}
    for line in open(ENV_EXAMPLE):
        m = re.match(r"^(#?)(ENMS_[A-Z_]+)=(.*)$", line.rstrip("\n"))
        if m:
            (commented if m.group(1) else values)[m.group(2)] = m.group(3)
    return values, commented


def test_systemd_units_verify(tmp_path, bin_dir):
    _tool("systemd-analyze")
    for name in UNITS:
        text = open(os.path.join(SYSTEMD, name)).read()
        # verify checks that ExecStart= exists: point it at the built binaries.
        text = text.replace("/usr/local/bin/", bin_dir.rstrip("/") + "/")
        text = text.replace("/etc/enms-retrain/enms.env", ENV_EXAMPLE)
        (tmp_path / name).write_text(text)
    targets = [str(tmp_path / "enms-api.service"), str(tmp_path / "enms-migrate.service"),
               str(tmp_path / "enms-worker@1.service"), str(tmp_path / "enms-worker@2.service")]
    proc = subprocess.run(["systemd-analyze", "verify", *targets], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "" and proc.stdout.strip() == "", proc.stderr + proc.stdout


def test_systemd_units_share_the_env_file_and_harden(make_binaries):
    names, _ = make_binaries
    values, _ = _env_file()
    for name in UNITS:
        u = _unit(name)
        assert u["EnvironmentFile"] == ["/etc/enms-retrain/enms.env"], name
        exe = shlex.split(u["ExecStart"][0])[0]
        assert os.path.dirname(exe) == "/usr/local/bin" and os.path.basename(exe) in names, exe
        for key, want in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                          ("PrivateTmp", "yes")]:
            assert u.get(key) == [want], (name, key)
        assert u.get("DynamicUser") == ["yes"] or u.get("User"), name
    for name in ("enms-api.service", "enms-worker@.service"):
        u = _unit(name)
        assert u["Restart"] == ["on-failure"] and u["KillSignal"] == ["SIGTERM"], name
    worker = _unit("enms-worker@.service")
    assert int(worker["TimeoutStopSec"][0]) > int(values["ENMS_SHUTDOWN_GRACE_S"])
    # One distinct id per instance and per host.
    ids = [e for e in worker.get("Environment", []) if e.startswith("ENMS_WORKER_ID=")]
    assert ids and "%i" in ids[0] and ("%H" in ids[0] or "%l" in ids[0]), ids


def test_env_example_names_only_known_settings(bin_dir, compose_cfg):
    known = _help_vars(bin_dir)
    values, commented = _env_file()
    names = set(values) | set(commented)
    assert names <= set(known), names - set(known)
    # A commented line shows the binary's default.
    for var, value in commented.items():
        if value:
            assert value == known[var], (var, value, known[var])
    # The worker id is per instance (the unit sets it); the file would override it.
    assert "ENMS_WORKER_ID" not in values
    # No secrets committed: the token and the database password are placeholders.
    assert values["ENMS_API_TOKEN"].startswith("REPLACE")
    assert "REPLACE" in values["ENMS_PG_DSN"]
    # The same settings as compose's containers.
    in_compose = set()
    for svc in compose_cfg["services"].values():
        in_compose |= {v for v in svc.get("environment", {}) if v.startswith("ENMS_")}
    assert names == in_compose | ENV_ONLY_OUTSIDE_COMPOSE, names ^ in_compose
    assert not in_compose & ENV_ONLY_OUTSIDE_COMPOSE


def test_env_example_values_are_accepted(bin_dir, migrated_db, redis_url):
    """Every value in the file, and every commented default, passes the
    binaries' configuration check (enmsctl status reads the same config)."""
    values, commented = _env_file()
    env = {"PATH": os.environ["PATH"]}
    for k, v in os.environ.items():
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
            env[k] = v
    env.update({k: v for k, v in commented.items() if v})
    env.update(values)
    env["ENMS_PG_DSN"] = migrated_db
    env["ENMS_REDIS_URL"] = redis_url
    proc = subprocess.run([os.path.join(bin_dir, "enmsctl"), "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"prefix":"{enms}"' in proc.stdout


# ------------------------------------------------------ worker healthcheck ---

def test_worker_healthcheck_follows_the_heartbeat(spawn, migrated_db, redis_url, bin_dir):
    prefix = "{t%s}" % os.urandom(4).hex()
    host = "hc-" + os.urandom(4).hex()
    env = {"ENMS_PG_DSN": migrated_db, "ENMS_REDIS_PREFIX": prefix, "ENMS_WORKER_HOST": host,
           "ENMS_HEARTBEAT_INTERVAL_S": "1", "ENMS_HEARTBEAT_TTL_S": "3"}
    check_env = dict(os.environ, **env, PATH=bin_dir + os.pathsep + os.environ["PATH"])

    def check():
        return subprocess.run(["sh", HEALTHCHECK], env=check_env, capture_output=True,
                              text=True, timeout=30)

    first = check()
    assert first.returncode == 1 and host in first.stderr, first.stderr
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    worker = spawn("enms-worker", env)
    deadline = time.monotonic() + 20
    while not r.smembers(f"{prefix}:workers") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.smembers(f"{prefix}:workers"), worker.output()
    ok = check()
    assert ok.returncode == 0, ok.stderr
    # Another host's worker does not make this one healthy.
    other = check_env | {"ENMS_WORKER_HOST": host + "x"}
    assert subprocess.run(["sh", HEALTHCHECK], env=other, capture_output=True).returncode == 1
    assert worker.stop() == 0
    assert check().returncode == 1
    # A server that cannot be reached is unhealthy, not an error of the script.
    down = check_env | {"ENMS_REDIS_URL": "redis://127.0.0.1:1/0",
                        "ENMS_CONNECT_TIMEOUT_MS": "200"}
    assert subprocess.run(["sh", HEALTHCHECK], env=down, capture_output=True).returncode == 1


# ---------------------------------------------------------- operations.md ---

def test_operations_doc_refers_to_real_things(bin_dir):
    text = open(OPERATIONS).read()
    # Relative links resolve, and so do their #anchors (GitHub's heading slugs).
    def anchors(path):
        heads = re.findall(r"^#+ (.+)$", open(path).read(), re.M)
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}

    for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", text):
        path = os.path.join(ROOT, "docs", target) if target else OPERATIONS
        assert os.path.exists(path), target
        if anchor:
            assert anchor in anchors(path), f"{target}#{anchor}"
    # Every enmsctl command it shows exists.
    helptext = subprocess.run([os.path.join(bin_dir, "enmsctl"), "--help"], capture_output=True,
                              text=True).stdout
    commands = set(re.findall(r"^  ([a-z]+)\s", helptext, re.M))
    assert commands
    used = set(re.findall(r"\benmsctl ([a-z]+)\b", text))
    assert used and used <= commands, used - commands
    # Every setting it names is one the binaries read, or one compose.yaml reads.
    known = set(_help_vars(bin_dir)) | set(re.findall(r"\$\{(ENMS_[A-Z_]+)", open(COMPOSE).read()))
    named = set(re.findall(r"\b(ENMS_[A-Z_]+[A-Z])\b", text))
    assert named <= known, named - known
    # The README lists it.
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "(docs/operations.md)" in readme
