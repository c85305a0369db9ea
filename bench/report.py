#!/usr/bin/python3
"""report.py - the goals table of docs/performance.md: reads the figures the
benchmark sections left in build/bench/*.json (and arima.jsonl) and writes
build/bench/goals.md, each goal of issue 9 with its measured ratio and
met / not met. Missing sections give "not measured". Run by bench/run.sh and
bench/scale.sh; prints the table too.

    bench/report.py [--command "make bench"] [--repeats N]
"""
import argparse
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "bench")


def load(name):
    try:
        with open(os.path.join(OUT, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def f0(x):
    return "–" if x is None else "{:,.0f}".format(x)


def f1(x):
    return "–" if x is None else "{:,.1f}".format(x)


def verdict(ok):
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--command", default="make bench")
    ap.add_argument("--repeats", default="3")
    a = ap.parse_args()
    rows = []
    d = load("dispatch.json")
    if d:
        ours = d["drain"]["2"]["per_s"] or 0
        rq = d["rq"]["rq.worker.SimpleWorker"]["per_s"]
        b16 = d["bullmq"]["16"]["per_s"]
        b1 = d["bullmq"]["1"]["per_s"]
        bbest = max(x for x in (b1, b16, 0) if x is not None)
        p99 = d["latency"]["running_p99_ms"]
        rows.append(("1. dispatch, 2 workers, durable", "≥ 5,000 jobs/s", "%s jobs/s" % f0(ours),
                     verdict(ours >= 5000)))
        rows.append(("1. vs python-rq SimpleWorker", "≥ 10×", "%s× (%s jobs/s)" % (f1(ours / rq) if rq else "–", f0(rq)),
                     verdict(rq is not None and ours >= 10 * rq)))
        rows.append(("1. vs BullMQ (best of concurrency 1 / 16)", "≥ 0.5×",
                     "%s× (%s jobs/s)" % ("{:.2f}".format(ours / bbest) if bbest else "–", f0(bbest)),
                     verdict(bbest > 0 and ours >= 0.5 * bbest)))
        rows.append(("1. enqueue→running p99, idle worker", "< 5 ms", "%s ms" % f1(p99),
                     verdict(p99 is not None and p99 < 5)))
    else:
        rows.append(("1. dispatch", "", "not measured", "–"))
    api = load("api.json")
    if api:
        trend = [x for x in api["rows"] if x["endpoint"].startswith("metrics/trend")]
        ours = max([x["rps"] or 0 for x in trend if x["system"] == "ours"] or [0])
        orig = max([x["rps"] or 0 for x in trend if x["system"] != "ours"] or [0])
        rows.append(("2. metrics/trend vs the original's 138 requests/s", "≥ 20× (2,760/s)",
                     "%s× (%s requests/s)" % (f1(ours / 138.0), f0(ours)), verdict(ours >= 20 * 138)))
        if orig:
            rows.append(("2. … vs FastAPI + asyncpg measured in this run", "≥ 20×",
                         "%s× (%s requests/s)" % (f1(ours / orig), f0(orig)), verdict(ours >= 20 * orig)))
    else:
        rows.append(("2. metrics/trend", "", "not measured", "–"))
    try:
        with open(os.path.join(OUT, "arima.jsonl")) as f:
            ar = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        ar = []
    for x in ar:
        if x.get("r_s") is None:
            continue
        # Like for like: R's auto.arima() alone against our fit alone (the whole
        # enmsctl process, start-up and CSV included, is shown beside it).
        alone = x.get("ours_fit_s") if (x.get("ours_fit_s") or -1) > 0 else None
        ratio = x["r_s"] / alone if alone else None
        whole = x["r_s"] / x["ours_s"] if x["ours_s"] else None
        aicc_ok = x["aicc"] <= x["r_aicc"] + 0.01
        rows.append(("3. auto-ARIMA, %s (n %d, m %d)" % (x["series"], x["n"], x["m"]),
                     "≥ 50× R, AICc ≤ R's",
                     "%s× fit alone (%s× whole process), AICc %+.2f vs R" % (
                         f0(ratio) if ratio else "–", f0(whole) if whole else "–",
                         x["aicc"] - x["r_aicc"]),
                     verdict(ratio is not None and ratio >= 50 and aicc_ok)))
    if not ar:
        rows.append(("3. auto-ARIMA vs R", "", "not measured", "–"))
    w_idle = d and d.get("worker_rss_idle_kb")
    a_idle = (api and api.get("api_rss_idle_kb")) or (d and d.get("api_rss_idle_kb"))
    a_load = api and api.get("api_rss_load_kb")
    if w_idle:
        rows.append(("4. worker RSS, idle", "≤ 10 MB", "%s MB" % f1(w_idle / 1024.0),
                     verdict(w_idle <= 10 * 1024)))
    if a_idle or a_load:
        worst = max(a_idle or 0, a_load or 0)
        rows.append(("4. API RSS, idle / under wrk load", "≤ 40 MB", "%s / %s MB" % (
            f1((a_idle or 0) / 1024.0), f1((a_load or 0) / 1024.0)), verdict(worst <= 40 * 1024)))
    sc = load("scale.json")
    if sc and sc.get("flatness") is not None:
        rows.append(("5. scale: per-job time 10 → %s machines" % f0(sc["max_machines"]),
                     "within 20 %", "%+.0f %%" % (sc["flatness"] * 100),
                     verdict(abs(sc["flatness"]) <= 0.20)))
    else:
        rows.append(("5. scale run", "within 20 %", "not measured in this run (make bench-scale)", "–"))
    lines = ["| goal | target | measured | |", "|---|---|---|---|"]
    lines += ["| %s | %s | %s | %s |" % r for r in rows]
    lines.append("")
    lines.append("From one `%s` run (median of %s runs per figure); the sections below have "
                 "the figures behind each line." % (a.command, a.repeats))
    text = "\n".join(lines) + "\n"
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "goals.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
