"""Proof that the black-box suite runs under ASan/UBSan and fails on a report
(issue 8, acceptance 3).

tests/run.sh points ENMS_BIN at the sanitizer build and sets ASAN_OPTIONS,
UBSAN_OPTIONS and LSAN_OPTIONS; every process a test starts writes its log
through conftest.Proc (stderr included, where sanitizer reports go), and
conftest.check_logs fails the test on any line that is not a JSON log record.
These tests check each link of that chain against the real thing:

- the binaries in ENMS_BIN are ASan + UBSan builds (their ELF imports the
  runtimes' entry points, and UBSan's aborting handlers), and the same check
  says no for a build without sanitizers;
- the options ask for leak detection, a non-zero exit on a report and a halt
  on the first UB;
- a real leak in our own binaries, injected from outside (a preloaded
  library whose constructor drops a malloc'd block: no test-only code in the
  binaries), gives a LeakSanitizer report, exit code 86 and a failed
  check_logs;
- a real UBSan report and a real ASan heap-buffer-overflow report, from a
  tiny program built with the Makefile's sanitizer flags, fail check_logs.

Were the harness switched to normal binaries, the first and third fail."""
import os
import re
import subprocess

import pytest

from conftest import Proc, check_logs, log_records

OUR_BINARIES = ("enms-api", "enms-worker", "enmsctl")
# The Makefile's SAN_FLAGS; the tiny programs below are built with them so
# their reports are the ones our binaries would print.
SAN_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
             "-fno-sanitize-recover=undefined"]

INJECT_LEAK_C = r"""
#include <stdlib.h>
/* volatile: the compiler may not drop the allocation or keep the pointer. */
static void *volatile keep;
__attribute__((constructor)) static void inject_leak(void)
{
    keep = malloc(77);
    keep = 0;
}
"""

FAULTS_C = r"""
#include <limits.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "ubsan") == 0) {
        volatile int big = INT_MAX;
        return big + argc; /* signed overflow */
    }
    if (argc > 1 && strcmp(argv[1], "overflow") == 0) {
        char *p = malloc(8);
        volatile int i = 8;
        int c = p[i]; /* heap-buffer-overflow read */
        free(p);
        return c;
    }
    return 0;
}
"""


def dynamic_symbols(path):
    out = subprocess.run(["nm", "-D", path], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.split()}


def sanitizer_problems(path):
    """What keeps path from being an ASan + UBSan (abort on UB) build."""
    syms = dynamic_symbols(path)
    problems = []
    if "__asan_init" not in syms:
        problems.append("no __asan_init (not built with -fsanitize=address)")
    ubsan = [s for s in syms if s.startswith("__ubsan_handle_")]
    if not ubsan:
        problems.append("no __ubsan_handle_* (not built with -fsanitize=undefined)")
    elif not any(s.endswith("_abort") for s in ubsan):
        problems.append("UBSan handlers recover (no -fno-sanitize-recover=undefined)")
    return problems


def compile_c(tmp_path, name, source, *flags):
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / name
    subprocess.run(["cc", "-g", "-O0", *flags, str(src), "-o", str(out)], check=True,
                   capture_output=True, text=True)
    return str(out)


def libasan_of(path):
    """The libasan a binary loads, from ldd (None when it loads none)."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    m = re.search(r"libasan\.so\S*\s+=>\s+(\S+)", out)
    return m.group(1) if m else None


def run_logged(tmp_path, name, args, env_extra=None):
    """Runs args the way the suite runs our processes (conftest.Proc: stdout
    and stderr into one log) and returns the stopped Proc."""
    env = dict(os.environ)
    env.update(env_extra or {})
    p = Proc(args, env, str(tmp_path / f"{name}.log"))
    p.proc.wait(timeout=60)
    p.stop()
    return p


def options(name):
    return dict(kv.split("=", 1) for kv in os.environ.get(name, "").split(":") if "=" in kv)


@pytest.mark.parametrize("name", OUR_BINARIES)
def test_suite_binaries_are_sanitizer_builds(bin_dir, name):
    path = os.path.join(bin_dir, name)
    assert os.access(path, os.X_OK), path
    assert not sanitizer_problems(path), f"{path}: {sanitizer_problems(path)}"


def test_the_symbol_check_tells_a_normal_build_apart(tmp_path):
    # The same program with and without the sanitizer flags: the check must
    # refuse the plain one, or the test above proves nothing.
    plain = compile_c(tmp_path, "plain", FAULTS_C)
    sanitized = compile_c(tmp_path, "sanitized", FAULTS_C, *SAN_FLAGS)
    assert len(sanitizer_problems(plain)) == 2, sanitizer_problems(plain)
    assert sanitizer_problems(sanitized) == []


def test_sanitizer_options_fail_on_every_report():
    asan, ubsan = options("ASAN_OPTIONS"), options("UBSAN_OPTIONS")
    assert asan.get("detect_leaks") == "1", os.environ.get("ASAN_OPTIONS")
    assert asan.get("exitcode", "1") != "0", os.environ.get("ASAN_OPTIONS")
    assert ubsan.get("halt_on_error") == "1", os.environ.get("UBSAN_OPTIONS")


def test_leak_suppressions_name_only_third_party_libraries():
    lsan = options("LSAN_OPTIONS")
    supp = lsan.get("suppressions")
    if not supp:
        return  # no suppressions at all: nothing hidden
    with open(supp, encoding="utf-8") as f:
        rules = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    ours = {"enms", "api", "worker", "common", "ctl", "main", "*"}
    for rule in rules:
        kind, _, pattern = rule.partition(":")
        assert kind == "leak", rule
        # A shared library by name, never a pattern that could match our code.
        assert re.fullmatch(r"lib[A-Za-z0-9_+-]+\.so(\.[0-9]+)*", pattern), rule
        assert not any(word in pattern for word in ours - {"*"}), rule


@pytest.mark.parametrize("name", OUR_BINARIES)
def test_a_leak_in_our_binary_fails_the_test(bin_dir, tmp_path, name):
    path = os.path.join(bin_dir, name)
    libasan = libasan_of(path)
    assert libasan, f"{path} does not load libasan: not a sanitizer build"
    inject = tmp_path / "inject_leak.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O0", "-x", "c", "-", "-o", str(inject)],
                   input=INJECT_LEAK_C, text=True, check=True, capture_output=True)
    # libasan first: ASan refuses to run when another library is loaded
    # before its runtime. --help runs and exits without PostgreSQL or Redis.
    p = run_logged(tmp_path, name, [path, "--help"],
                   {"LD_PRELOAD": f"{libasan}:{inject}"})
    out = p.output()
    assert p.proc.returncode == int(options("ASAN_OPTIONS").get("exitcode", "1")), (
        p.proc.returncode, out[-2000:])
    assert "ERROR: LeakSanitizer: detected memory leaks" in out, out[-2000:]
    assert "inject_leak" in out, out[-2000:]
    _, problems = log_records(out)
    assert any("LeakSanitizer" in m for m in problems), problems
    with pytest.raises(AssertionError, match="log check failed"):
        check_logs([p])


@pytest.mark.parametrize("fault,report", [
    ("ubsan", "runtime error: signed integer overflow"),
    ("overflow", "ERROR: AddressSanitizer: heap-buffer-overflow"),
])
def test_ubsan_and_asan_reports_fail_the_log_check(tmp_path, fault, report):
    prog = compile_c(tmp_path, "faults", FAULTS_C, *SAN_FLAGS)
    p = run_logged(tmp_path, fault, [prog, fault])
    out = p.output()
    assert report in out, out[-2000:]
    assert p.proc.returncode != 0, out[-2000:]
    _, problems = log_records(out)
    assert any(report.split(": ", 1)[-1] in m for m in problems), problems
    with pytest.raises(AssertionError, match="log check failed"):
        check_logs([p])

