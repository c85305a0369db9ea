#!/usr/bin/env python3
"""arima_series.py - writes the series bench/arima_bench.sh times auto-ARIMA on,
as one-column CSV files (header "y") into the folder given as the argument.

  airpassengers.csv, wwwusage.csv  copies of ../shared/reference/data (R's data sets)
  load744.csv      hourly load (MW) of a US utility, January 1992: gretl-data's
                   ramanathan/data10-2.gdt (Debian package gretl-data)
  ar2000.csv       2,000 hours: AR(1) noise (phi 0.7) plus a daily and a weekly sine
  load2000.csv     2,000 hours of a synthetic plant load: working-hours shape,
                   weekend drop, slow temperature-driven wander, AR(1) noise
  load8760.csv     the same generator over a year (8,760 hours)

The synthetic series come from Python's Mersenne Twister with fixed seeds
(random.gauss is reproducible across CPython versions), so every run times the
same numbers. Only the standard library is used.
"""
import math
import os
import random
import shutil
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "reference", "data"))
GRETL = "/usr/share/gretl/data/ramanathan/data10-2.gdt"


def write(path, values):
    with open(path, "w", encoding="ascii") as f:
        f.write("y\n")
        for v in values:
            f.write("%.6f\n" % v)


def ar_sines(n, seed):
    rng = random.Random(seed)
    e, out = 0.0, []
    for t in range(n):
        e = 0.7 * e + rng.gauss(0.0, 1.0)
        out.append(50.0 + 5.0 * math.sin(2 * math.pi * t / 24) +
                   3.0 * math.sin(2 * math.pi * t / 168) + e)
    return out


def plant_load(n, seed):
    rng = random.Random(seed)
    e, temp, out = 0.0, 0.0, []
    for t in range(n):
        hour, day = t % 24, (t // 24) % 7
        shape = 40.0 if 7 <= hour < 18 else (20.0 if 6 <= hour < 20 else 8.0)
        if day >= 5:  # Saturday, Sunday
            shape *= 0.35
        temp = 0.995 * temp + rng.gauss(0.0, 0.4)
        e = 0.6 * e + rng.gauss(0.0, 2.0)
        out.append(100.0 + shape + 1.5 * temp + e)
    return out


def gretl_load(path):
    root = ET.parse(path).getroot()
    names = [v.get("name") for v in root.iter("variable")]
    col = names.index("load")
    return [float(o.text.split()[col]) for o in root.iter("obs")]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: arima_series.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in ("airpassengers.csv", "wwwusage.csv"):
        shutil.copyfile(os.path.join(REF, name), os.path.join(out, name))
    if os.path.exists(GRETL):
        write(os.path.join(out, "load744.csv"), gretl_load(GRETL))
    else:
        print("arima_series.py: %s missing (apt-get install gretl-data); load744 skipped"
              % GRETL, file=sys.stderr)
    write(os.path.join(out, "ar2000.csv"), ar_sines(2000, 4))
    write(os.path.join(out, "load2000.csv"), plant_load(2000, 5))
    write(os.path.join(out, "load8760.csv"), plant_load(8760, 6))


if __name__ == "__main__":
    main()
