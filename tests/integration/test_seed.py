"""`enmsctl seed`: the demo machines, a year of hourly readings, labels and truth.

Covers: what one seed loads (ids, names, 8 x 8760 rows, labels, truth), that a second seed
without --force changes nothing, that --force reproduces the same data bit for bit, that
--truth-out agrees with demo_truth, that bad options load nothing, and that two seeds at
once do not collide. The model's truth itself is checked by the unit tests
(tests/unit/test_demo_data.c); here only the loading is.
"""
import json
import os
import re
import subprocess

import pytest

from conftest import pg_query, run_ctl

END = "2026-01-01"
IDS = [f"c0000000-0000-0000-0000-{n:012d}" for n in range(1, 9)]
MACHINES = {
    IDS[0]: ("Compressor-1", "compressor"),
    IDS[1]: ("HVAC-Main", "hvac"),
    IDS[2]: ("Conveyor-A", "conveyor"),
    IDS[3]: ("Hydraulic-Pump-1", "pump"),
    IDS[4]: ("Injection-Molding-1", "injection_molding"),
    IDS[5]: ("Compressor-EU-1", "compressor"),
    IDS[6]: ("HVAC-EU-North", "hvac"),
    IDS[7]: ("Boiler-1", "boiler"),
}
NO_PRODUCTION = {IDS[1], IDS[6], IDS[7]}  # HVACs and the boiler
SUMMARY = re.compile(r"^seeded 8 machines, (\d+) readings, (\d+) labelled anomalies in "
                     r"([0-9.]+) s$", re.M)


def seed(bin_dir, dsn, *args, check=True):
    proc = run_ctl(bin_dir, dsn, "seed", *args, check=check)
    # The load time goes into the test output (pytest -s or on failure), never an assertion:
    # sanitizer builds and busy CI hosts are slower.
    match = SUMMARY.search(proc.stdout)
    if match:
        print(f"enmsctl seed {' '.join(args)}: {match.group(0)}")
    return proc


def checksums(dsn):
    """Per machine: row count and an md5 over every stored value, in time order."""
    rows = pg_query(dsn, """
        SELECT machine_id::text, count(*),
               md5(string_agg(concat_ws('|', extract(epoch FROM ts), energy_kwh,
                                        coalesce(production_count::text, 'null'), outdoor_temp_c),
                              ',' ORDER BY ts))
        FROM energy_readings GROUP BY machine_id ORDER BY machine_id""")
    return {r[0]: (r[1], r[2]) for r in rows}


def labels(dsn):
    return pg_query(dsn, """
        SELECT machine_id::text, ts_start, ts_end, kind, source, is_anomaly
        FROM anomaly_labels ORDER BY machine_id, ts_start""")


def truths(dsn):
    return {r[0]: (r[1], r[2]) for r in
            pg_query(dsn, "SELECT machine_id::text, seed, truth FROM demo_truth")}


def test_seed_loads_the_demo_year(migrated_db, bin_dir):
    proc = seed(bin_dir, migrated_db, "--end", END)
    match = SUMMARY.search(proc.stdout)
    assert match, proc.stdout
    assert match.group(1) == "70080"
    for name, _ in MACHINES.values():
        assert name in proc.stdout  # progress per machine

    machines = pg_query(migrated_db, """
        SELECT id::text, name, type, location, rated_power_kw FROM machines ORDER BY id""")
    assert [(m[0], m[1], m[2]) for m in machines] == \
        [(i, *MACHINES[i]) for i in IDS]
    assert all(m[3] and m[4] > 0 for m in machines)
    # The EU machines are in Europe.
    assert all("(DE)" in m[3] or "(SE)" in m[3] for m in machines if "-EU-" in m[1])

    per_machine = pg_query(migrated_db, """
        SELECT machine_id::text, count(*), min(ts) AT TIME ZONE 'UTC', max(ts) AT TIME ZONE 'UTC',
               count(production_count), min(energy_kwh)
        FROM energy_readings GROUP BY machine_id ORDER BY machine_id""")
    assert len(per_machine) == 8
    for mid, count, first, last, with_production, min_energy in per_machine:
        assert count == 8760, mid
        assert str(first) == "2025-01-01 00:00:00"
        assert str(last) == "2025-12-31 23:00:00"
        assert with_production == (0 if mid in NO_PRODUCTION else 8760), mid
        assert min_energy >= 0

    got = labels(migrated_db)
    assert len(got) == int(match.group(2)) == 40
    assert {lab[4] for lab in got} == {"injected"}
    assert all(lab[5] for lab in got)
    kinds = [lab[3] for lab in got]
    assert (kinds.count("spike"), kinds.count("level_shift"), kinds.count("stuck_meter")) == \
        (24, 8, 8)
    outside = pg_query(migrated_db, """
        SELECT count(*) FROM anomaly_labels
        WHERE ts_start < '2025-01-01T00:00Z' OR ts_end > '2026-01-01T00:00Z'""")[0][0]
    assert outside == 0

    # A stuck meter really is stuck in the stored data.
    stuck = pg_query(migrated_db, """
        SELECT l.machine_id::text, count(DISTINCT r.energy_kwh), count(*)
        FROM anomaly_labels l JOIN energy_readings r
          ON r.machine_id = l.machine_id AND r.ts >= l.ts_start AND r.ts < l.ts_end
        WHERE l.kind = 'stuck_meter' GROUP BY l.id, l.machine_id""")
    assert len(stuck) == 8
    assert all(distinct == 1 and hours >= 12 for _, distinct, hours in stuck), stuck

    # The truth rows name the same anomalies as the labels.
    t = truths(migrated_db)
    assert set(t) == set(IDS)
    for mid, (seed_value, truth) in t.items():
        assert seed_value == 42
        assert truth["machine_id"] == mid and truth["seed"] == 42
        assert truth["window"] == {"start": "2025-01-01T00:00:00Z",
                                   "end": "2026-01-01T00:00:00Z", "hours": 8760}
        from_labels = [(lab[1].strftime("%Y-%m-%dT%H:%M:%SZ"), lab[2].strftime("%Y-%m-%dT%H:%M:%SZ"),
                        lab[3]) for lab in got if lab[0] == mid]
        assert [(a["start"], a["end"], a["kind"]) for a in truth["anomalies"]] == from_labels
    boiler = t[IDS[7]][1]
    assert boiler["heating"]["kwh_per_degree_hour"] > 0
    assert boiler["cooling"] == {"kwh_per_degree_hour": 0, "balance_point_c": None}
    assert boiler["production_kwh_per_unit"] is None


def test_second_seed_without_force_changes_nothing(migrated_db, bin_dir):
    seed(bin_dir, migrated_db, "--end", END)
    before = (checksums(migrated_db), labels(migrated_db),
              pg_query(migrated_db, "SELECT machine_id, generated_at FROM demo_truth ORDER BY 1"))
    proc = seed(bin_dir, migrated_db, "--end", END, "--seed", "7")
    assert proc.returncode == 0
    assert "demo data already present (70080 readings); use --force to replace" in proc.stdout
    after = (checksums(migrated_db), labels(migrated_db),
             pg_query(migrated_db, "SELECT machine_id, generated_at FROM demo_truth ORDER BY 1"))
    assert after == before


def test_force_reproduces_identical_data(migrated_db, bin_dir):
    seed(bin_dir, migrated_db, "--end", END)
    first = (checksums(migrated_db), labels(migrated_db), truths(migrated_db))

    seed(bin_dir, migrated_db, "--end", END, "--force")
    again = (checksums(migrated_db), labels(migrated_db), truths(migrated_db))
    assert again == first

    # Another seed really gives other data, and --force replaces rather than adds.
    seed(bin_dir, migrated_db, "--end", END, "--force", "--seed", "7")
    other = checksums(migrated_db)
    assert {mid: c[0] for mid, c in other.items()} == {mid: 8760 for mid in IDS}
    assert all(other[mid][1] != first[0][mid][1] for mid in IDS)
    assert len(labels(migrated_db)) == 40
    assert {s for s, _ in truths(migrated_db).values()} == {7}


def test_force_keeps_labels_of_users(migrated_db, bin_dir):
    seed(bin_dir, migrated_db, "--end", END, "--days", "30")
    pg_query(migrated_db, """
        INSERT INTO anomaly_labels (machine_id, ts_start, ts_end, kind, source)
        VALUES (%s, '2025-12-10T00:00Z', '2025-12-10T02:00Z', 'other', 'user')""", (IDS[0],))
    seed(bin_dir, migrated_db, "--end", END, "--days", "30", "--force")
    sources = pg_query(migrated_db,
                       "SELECT source, count(*) FROM anomaly_labels GROUP BY 1 ORDER BY 1")
    assert dict(sources)["user"] == 1
    assert dict(sources)["injected"] > 0


def test_truth_out_matches_demo_truth(migrated_db, bin_dir, tmp_path):
    out = tmp_path / "truth.json"
    proc = seed(bin_dir, migrated_db, "--end", END, "--truth-out", str(out))
    assert f"truth written to {out}" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["seed"] == 42
    assert doc["generator"] == doc["machines"][0]["generator"]
    assert doc["window"] == {"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z",
                             "hours": 8760}
    assert [m["machine_id"] for m in doc["machines"]] == IDS
    stored = truths(migrated_db)
    for m in doc["machines"]:
        assert m == stored[m["machine_id"]][1]
    assert not (tmp_path / "truth.json.tmp").exists()


def test_short_window(migrated_db, bin_dir):
    seed(bin_dir, migrated_db, "--end", END, "--days", "1", "--seed", "3")
    counts = checksums(migrated_db)
    assert {mid: c[0] for mid, c in counts.items()} == {mid: 24 for mid in IDS}
    # One day has no room for an anomaly with clean hours around it.
    assert labels(migrated_db) == []


@pytest.mark.parametrize("args, message", [
    (["--days", "0"], "--days"),
    (["--days", "3661"], "--days"),
    (["--days", "ten"], "--days"),
    (["--end", "2026-13-01"], "--end"),
    (["--end", "2025-02-29"], "--end"),
    (["--end", "01/01/2026"], "--end"),
    (["--seed", "abc"], "--seed"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "9007199254740992"], "--seed"),
    (["--seed"], "--seed needs a value"),
    (["--truth-out", ""], "--truth-out"),
    (["--end", "1970-01-02", "--days", "2"], "before 1970"),
    (["--frobnicate"], "unknown option"),
])
def test_invalid_options_load_nothing(migrated_db, bin_dir, args, message):
    proc = seed(bin_dir, migrated_db, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert pg_query(migrated_db, "SELECT count(*) FROM machines")[0][0] == 0
    assert pg_query(migrated_db, "SELECT count(*) FROM energy_readings")[0][0] == 0


def test_failed_load_leaves_no_truth_file(migrated_db, bin_dir, tmp_path):
    # A directory where the file should go: writing fails, the transaction rolls back.
    out = tmp_path / "taken"
    (tmp_path / "taken.tmp").mkdir()
    proc = seed(bin_dir, migrated_db, "--end", END, "--days", "2", "--truth-out", str(out),
                check=False)
    assert proc.returncode != 0
    assert "taken.tmp" in proc.stderr
    assert not out.exists()
    assert pg_query(migrated_db, "SELECT count(*) FROM energy_readings")[0][0] == 0


def test_help(bin_dir, migrated_db):
    proc = seed(bin_dir, migrated_db, "--help")
    assert "--truth-out" in proc.stdout and "--force" in proc.stdout


def test_two_seeds_at_once_load_once(migrated_db, bin_dir):
    env = dict(os.environ, ENMS_PG_DSN=migrated_db)
    cmd = [os.path.join(bin_dir, "enmsctl"), "seed", "--end", END, "--days", "60"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    stdout = " ".join(o[0] for o in outs)
    assert stdout.count("seeded 8 machines") == 1, stdout
    assert stdout.count("already present") == 1, stdout
    assert {mid: c[0] for mid, c in checksums(migrated_db).items()} == \
        {mid: 60 * 24 for mid in IDS}
