"""`enmsctl import`: CSV readings and the gretl sample series, all or nothing.

Covers: bad rows are named by line and nothing is loaded; a good file loads every row with
the right values; re-importing is harmless and --replace overwrites; unknown machines and
duplicate hours inside a file are refused; --dry-run writes nothing; stdin, CRLF and BOM;
a file large enough to need several COPY chunks; the gretl data10-2 series loads as a
machine with values matching the .gdt file.
"""
import csv
import datetime
import math
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT, pg_query, run_ctl

DATA = os.path.join(ROOT, "tests", "data")
GDT = "/usr/share/gretl/data/ramanathan/data10-2.gdt"

MACHINE = "6f1c2a4e-3b5d-4c7e-9f10-2a3b4c5d6e01"  # the machine of the fixture files
OTHER = "0b7e8d6c-5a4f-4e3d-8c2b-1a0f9e8d7c6b"    # named by a fixture, never created
GRETL_MACHINE = "9a1f3c5e-7b2d-4e6f-8a0b-1c2d3e4f5a60"


def data(name):
    return os.path.join(DATA, name)


def add_machine(dsn, machine_id=MACHINE, name="Press-1"):
    pg_query(dsn, "INSERT INTO machines (id, name, type) VALUES (%s, %s, 'injection_molding')",
             (machine_id, name))


def reading_count(dsn):
    return pg_query(dsn, "SELECT count(*) FROM energy_readings")[0][0]


def named_lines(stderr, unit="line"):
    """Line numbers at the start of the problem messages."""
    return [int(n) for n in re.findall(rf"^{unit} (\d+): ", stderr, re.M)]


def file_rows(path):
    """Data rows of a fixture as dicts, blank lines skipped."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [r for r in csv.DictReader(f) if any((v or "").strip() for v in r.values())]


@pytest.fixture
def db(migrated_db):
    add_machine(migrated_db)
    return migrated_db


def test_bad_rows_load_nothing_and_are_named(db, bin_dir):
    proc = run_ctl(bin_dir, db, "import", data("readings_bad.csv"))
    assert proc.returncode != 0
    assert sorted(named_lines(proc.stderr)) == [3, 5, 8], proc.stderr
    assert 'line 3: energy_kwh: "-3" is negative' in proc.stderr
    assert "line 5: ts:" in proc.stderr and "February 2023" in proc.stderr
    assert 'line 8: outdoor_temp_c: "95"' in proc.stderr
    assert "3 bad lines" in proc.stderr and "nothing was loaded" in proc.stderr
    assert reading_count(db) == 0


def test_good_file_loads_every_row(db, bin_dir):
    path = data("readings_good.csv")
    rows = file_rows(path)
    proc = run_ctl(bin_dir, db, "import", path, check=True)
    assert f"loaded {len(rows)} rows ({len(rows)} new, 0 already present) for 1 machine" \
        in proc.stdout
    got = pg_query(db, "SELECT count(*), sum(energy_kwh), sum(production_count), "
                       "sum(outdoor_temp_c), count(production_count), count(outdoor_temp_c) "
                       "FROM energy_readings WHERE machine_id = %s", (MACHINE,))[0]
    want_energy = sum(float(r["energy_kwh"]) for r in rows)
    prods = [float(r["production_count"]) for r in rows if r["production_count"].strip()]
    temps = [float(r["outdoor_temp_c"]) for r in rows if r["outdoor_temp_c"].strip()]
    assert got[0] == len(rows)
    assert math.isclose(got[1], want_energy)
    assert math.isclose(got[2], sum(prods)) and got[4] == len(prods)
    assert math.isclose(got[3], sum(temps)) and got[5] == len(temps)
    # The row written "2024-02-29T02:00+01:00" is stored at 01:00 UTC, and the upper-case
    # machine id of another row was folded into the same machine.
    hours = pg_query(db, "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                         "energy_kwh FROM energy_readings ORDER BY ts")
    assert ("2024-02-29 01:00", 36.75) in hours
    assert [h for h, _ in hours] == ["2024-02-28 22:00", "2024-02-28 23:00", "2024-02-29 00:00",
                                     "2024-02-29 01:00", "2024-02-29 02:00", "2024-02-29 03:00"]


def test_reimport_is_harmless_and_replace_overwrites(db, bin_dir, tmp_path):
    path = data("readings_good.csv")
    run_ctl(bin_dir, db, "import", path, check=True)
    before = pg_query(db, "SELECT sum(energy_kwh) FROM energy_readings")[0][0]
    again = run_ctl(bin_dir, db, "import", path, check=True)
    assert "(0 new, 6 already present)" in again.stdout
    assert reading_count(db) == 6
    assert pg_query(db, "SELECT sum(energy_kwh) FROM energy_readings")[0][0] == before

    # One known hour with a new value and one new hour; no temperature column, so --replace
    # keeps the stored temperature.
    changed = tmp_path / "changed.csv"
    changed.write_text("machine_id,ts,energy_kwh,production_count\n"
                       f"{MACHINE},2024-02-28T22:00:00Z,99,7\n"
                       f"{MACHINE},2024-02-29T04:00:00Z,5,1\n")
    kept = run_ctl(bin_dir, db, "import", str(changed), check=True)
    assert "(1 new, 1 already present)" in kept.stdout
    assert pg_query(db, "SELECT energy_kwh FROM energy_readings "
                        "WHERE ts = '2024-02-28T22:00Z'")[0][0] == 41.5
    replaced = run_ctl(bin_dir, db, "import", "--replace", str(changed), check=True)
    assert "(0 new, 2 replaced)" in replaced.stdout
    assert pg_query(db, "SELECT energy_kwh, production_count, outdoor_temp_c FROM "
                        "energy_readings WHERE ts = '2024-02-28T22:00Z'")[0] == (99.0, 7.0, 3.5)
    assert reading_count(db) == 7


def test_unknown_machine_loads_nothing(db, bin_dir):
    proc = run_ctl(bin_dir, db, "import", data("readings_unknown_machine.csv"))
    assert proc.returncode != 0
    assert OTHER in proc.stderr
    assert named_lines(proc.stderr) == [3], proc.stderr
    assert "unknown machine" in proc.stderr and "2 rows" in proc.stderr
    assert reading_count(db) == 0  # not even the known machine's row


def test_duplicate_hour_in_file_names_both_lines(db, bin_dir):
    proc = run_ctl(bin_dir, db, "import", data("readings_dup.csv"))
    assert proc.returncode != 0
    assert re.search(r"^line 5: duplicate of line 4\b", proc.stderr, re.M), proc.stderr
    assert named_lines(proc.stderr) == [5]
    assert reading_count(db) == 0


def test_bad_lines_and_duplicates_are_reported_together(db, bin_dir, tmp_path):
    path = tmp_path / "both.csv"
    path.write_text("machine_id,ts,energy_kwh\n"
                    f"{MACHINE},2024-05-01T00:00Z,1\n"
                    f"{MACHINE},2024-05-01T00:30Z,1\n"
                    f"{MACHINE},2024-05-01T00:00Z,2\n")
    proc = run_ctl(bin_dir, db, "import", str(path))
    assert proc.returncode != 0
    assert sorted(named_lines(proc.stderr)) == [3, 4], proc.stderr
    assert "minutes and seconds must be 0" in proc.stderr
    assert "duplicate of line 2" in proc.stderr


def test_dry_run_writes_nothing(db, bin_dir):
    proc = run_ctl(bin_dir, db, "import", "--dry-run", data("readings_good.csv"), check=True)
    assert "dry run: 6 rows valid for 1 machine" in proc.stdout
    assert reading_count(db) == 0
    bad = run_ctl(bin_dir, db, "import", "--dry-run", data("readings_bad.csv"))
    assert bad.returncode != 0 and sorted(named_lines(bad.stderr)) == [3, 5, 8]


def test_stdin_crlf_and_bom(db, bin_dir):
    text = ("\ufeffmachine_id,ts,energy_kwh\r\n"
            f"{MACHINE},2024-06-01T00:00Z,1.25\r\n"
            f"{MACHINE},2024-06-01T01:00Z,2.5")  # no final line end
    env = dict(os.environ, ENMS_PG_DSN=db)
    proc = subprocess.run([os.path.join(bin_dir, "enmsctl"), "import", "-"], input=text,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "loaded 2 rows" in proc.stdout
    assert pg_query(db, "SELECT sum(energy_kwh) FROM energy_readings")[0][0] == 3.75


def test_many_rows_and_machines(db, bin_dir, tmp_path):
    machines = [f"aaaaaaaa-0000-4000-8000-{i:012x}" for i in range(1, 4)]
    for i, m in enumerate(machines):
        add_machine(db, m, f"Line-{i}")
    hours = 3000  # about 270 KB of CSV: several COPY chunks
    base = datetime.datetime(2023, 1, 1, tzinfo=datetime.timezone.utc)
    path = tmp_path / "big.csv"
    total = 0.0
    with open(path, "w") as f:
        f.write("outdoor_temp_c,energy_kwh,ts,machine_id\n")  # columns in any order
        for h in range(hours):
            ts = (base + datetime.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for k, m in enumerate(machines):
                e = round(10 + k + (h % 24) * 0.5, 3)
                total += e
                f.write(f"{(h % 40) - 10},{e},{ts},{m}\n")
    proc = run_ctl(bin_dir, db, "import", str(path), check=True)
    n = hours * len(machines)
    assert f"loaded {n} rows ({n} new, 0 already present) for 3 machines" in proc.stdout
    count, energy = pg_query(db, "SELECT count(*), sum(energy_kwh) FROM energy_readings")[0]
    assert count == n and math.isclose(energy, total, rel_tol=1e-12)


def test_many_bad_lines_are_capped(db, bin_dir, tmp_path):
    path = tmp_path / "junk.csv"
    path.write_text("machine_id,ts,energy_kwh\n" +
                    "".join(f"{MACHINE},2024-01-01T00:00Z,x{i}\n" for i in range(120)))
    proc = run_ctl(bin_dir, db, "import", str(path))
    assert proc.returncode != 0
    assert len(named_lines(proc.stderr)) == 50
    assert "120 bad lines" in proc.stderr and "first 50 shown" in proc.stderr


def test_bad_header_and_usage(db, bin_dir, tmp_path):
    path = tmp_path / "hdr.csv"
    path.write_text("machine_id,ts,energy_kwh,humidity\n")
    proc = run_ctl(bin_dir, db, "import", str(path))
    assert proc.returncode != 0 and 'unknown column "humidity"' in proc.stderr
    assert run_ctl(bin_dir, db, "import").returncode != 0
    assert run_ctl(bin_dir, db, "import", "--gretl", GDT).returncode != 0  # no --machine-id
    assert run_ctl(bin_dir, db, "import", str(tmp_path / "missing.csv")).returncode != 0


def read_gdt(path):
    """(load MW, temp °F) per observation, in file order, with Python's own XML parser."""
    root = ET.parse(path).getroot()
    names = [v.get("name") for v in root.find("variables")]
    obs = []
    for o in root.find("observations"):
        values = dict(zip(names, o.text.split()))
        obs.append((values["day_hour"], float(values["load"]), float(values["temp"])))
    return obs


def test_gretl_series_loads_as_a_machine(migrated_db, bin_dir):
    assert os.path.exists(GDT), "gretl-data is a project dependency: apt-get install gretl-data"
    obs = read_gdt(GDT)
    assert len(obs) == 744 and obs[0][0] == "1.01"

    proc = run_ctl(bin_dir, migrated_db, "import", "--gretl", GDT, "--machine-id", GRETL_MACHINE,
                   check=True)
    assert "loaded 744 rows (744 new, 0 already present)" in proc.stdout
    assert pg_query(migrated_db, "SELECT name, type, location FROM machines WHERE id = %s",
                    (GRETL_MACHINE,)) == [("Utility-Load-1992", "other",
                                           "US utility (gretl data10-2)")]
    rows = pg_query(migrated_db,
                    "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), energy_kwh, "
                    "outdoor_temp_c FROM energy_readings WHERE machine_id = %s ORDER BY ts",
                    (GRETL_MACHINE,))
    assert len(rows) == 744
    assert rows[0][0] == "1992-01-01 00:00" and rows[-1][0] == "1992-01-31 23:00"
    for (day_hour, load_mw, temp_f), (ts, kwh, temp_c) in zip(obs, rows):
        day, hour = day_hour.split(".")
        assert ts == f"1992-01-{int(day):02d} {int(hour) - 1:02d}:00"
        assert math.isclose(kwh, load_mw * 1000.0)
        assert math.isclose(temp_c, (temp_f - 32.0) * 5.0 / 9.0, abs_tol=1e-9)
    # Plausible for a utility in January: 1.6-3.9 GWh an hour, -3 to 15 °C.
    assert 1.6e6 <= min(r[1] for r in rows) and max(r[1] for r in rows) <= 3.9e6
    assert -5 <= min(r[2] for r in rows) and max(r[2] for r in rows) <= 16

    again = run_ctl(bin_dir, migrated_db, "import", "--gretl", GDT, "--machine-id",
                    GRETL_MACHINE, check=True)
    assert "(0 new, 744 already present)" in again.stdout

    # Another id under the default name is refused; a new name and a year offset work.
    other = "11111111-2222-4333-8444-555555555555"
    clash = run_ctl(bin_dir, migrated_db, "import", "--gretl", GDT, "--machine-id", other)
    assert clash.returncode != 0 and GRETL_MACHINE in clash.stderr
    run_ctl(bin_dir, migrated_db, "import", "--gretl", GDT, "--machine-id", other,
            "--name", "Utility-Load-2024", "--year-offset", "32", check=True)
    assert pg_query(migrated_db, "SELECT min(ts) AT TIME ZONE 'UTC', count(*) "
                                 "FROM energy_readings WHERE machine_id = %s",
                    (other,))[0] == (datetime.datetime(2024, 1, 1), 744)


def test_gretl_dry_run_creates_nothing(migrated_db, bin_dir):
    proc = run_ctl(bin_dir, migrated_db, "import", "--dry-run", "--gretl", GDT, "--machine-id",
                   GRETL_MACHINE, check=True)
    assert "744 rows valid" in proc.stdout and "would be created" in proc.stdout
    assert pg_query(migrated_db, "SELECT count(*) FROM machines")[0][0] == 0
    assert reading_count(migrated_db) == 0


def test_gretl_bad_observations_are_named(migrated_db, bin_dir, tmp_path):
    with open(GDT) as f:
        text = f.read()
    text = text.replace("<obs>1.05 1867 40 </obs>", "<obs>1.05 NA 40 </obs>")
    text = text.replace("<obs>2.01 1839 45 </obs>", "<obs>2.01 -5 45 </obs>")
    path = tmp_path / "bad.gdt"
    path.write_text(text)
    proc = run_ctl(bin_dir, migrated_db, "import", "--gretl", str(path), "--machine-id",
                   GRETL_MACHINE)
    assert proc.returncode != 0
    assert named_lines(proc.stderr, "obs") == [5, 25], proc.stderr
    assert pg_query(migrated_db, "SELECT count(*) FROM machines")[0][0] == 0


def test_failure_inside_the_transaction_rolls_back_everything(migrated_db, bin_dir):
    # A trigger refuses the very last row, after the machine was inserted and every other
    # row copied: the whole import, machine included, must disappear.
    pg_query(migrated_db, """
        CREATE FUNCTION refuse_last() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.ts = '1992-01-31T23:00Z' THEN
                RAISE EXCEPTION 'refused by test trigger';
            END IF;
            RETURN NEW;
        END $$""")
    pg_query(migrated_db, "CREATE TRIGGER refuse_last BEFORE INSERT ON energy_readings "
                          "FOR EACH ROW EXECUTE FUNCTION refuse_last()")
    proc = run_ctl(bin_dir, migrated_db, "import", "--gretl", GDT, "--machine-id", GRETL_MACHINE)
    assert proc.returncode != 0
    assert "refused by test trigger" in proc.stderr
    assert pg_query(migrated_db, "SELECT count(*) FROM machines")[0][0] == 0
    assert reading_count(migrated_db) == 0
