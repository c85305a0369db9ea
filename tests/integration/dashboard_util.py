"""Helpers for the dashboard's browser tests: a module-wide stack (own database with demo
data, API, two workers), headless Debian Chromium driven by Selenium with every host but
localhost unresolvable, the check that no page ever asked another host, and small waits."""
import json
import os
import shutil
import time
import urllib.parse
import uuid

import psycopg2

from conftest import Proc, free_port, run_ctl, wait_http
from pipeline import pipeline_env

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHOTS = os.path.join(ROOT, "docs", "screenshots")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


class Stack:
    """Its own database (migrated, seeded), an API and two workers, all stopped by close()."""

    def __init__(self, admin_dsn, redis_url, bin_dir, tmpdir, seed_end, seed_days):
        self.admin_dsn, self.bin_dir, self.tmp = admin_dsn, bin_dir, tmpdir
        self.dbname = "t_dash_" + uuid.uuid4().hex[:10]
        conn = psycopg2.connect(admin_dsn)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{self.dbname}"')
        conn.close()
        self.dsn = admin_dsn.rpartition("/")[0] + "/" + self.dbname
        self.procs = []
        run_ctl(bin_dir, self.dsn, "migrate", check=True)
        run_ctl(bin_dir, self.dsn, "seed", "--end", seed_end, "--days", str(seed_days), check=True)
        self.env = pipeline_env(self.dsn, redis_url, ENMS_JOB_TIMEOUT_S=300)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = self.start_api()
        self.workers = [self.spawn("enms-worker", {"ENMS_WORKER_ID": f"wdash-{i}"}) for i in (1, 2)]

    def spawn(self, name, extra):
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        p = Proc([os.path.join(self.bin_dir, name)], env,
                 os.path.join(self.tmp, f"{name}-{len(self.procs)}.log"))
        self.procs.append(p)
        return p

    def start_api(self):
        api = self.spawn("enms-api", {"ENMS_HTTP_PORT": str(self.port)})
        wait_http(f"{self.base}/healthz", expect=200)
        return api

    def query(self, sql, params=None):
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows

    def close(self):
        bad = []
        for p in self.procs:
            rc = p.stop()
            out = p.output()
            if "Sanitizer" in out or rc not in (0, None, -15):
                bad.append(f"{p.log_path}: exit {rc}\n{out[-2000:]}")
        conn = psycopg2.connect(self.admin_dsn)
        conn.autocommit = True
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        conn.close()
        return bad


def chromium_driver(download_dir=None):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--disable-extensions",
                "--disable-features=Translate,OptimizationHints,MediaRouter",
                # The network is cut off from everything but localhost: any other host
                # fails to resolve (and the performance log still records the attempt).
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_page_load_timeout(30)
    return drv


class NetLog:
    """Every URL the pages asked for, from the DevTools performance log."""

    def __init__(self, driver):
        self.driver = driver
        self.urls = []

    def collect(self):
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                self.urls.append(msg["params"]["request"]["url"])
        return self.urls

    def foreign(self):
        out = []
        for u in self.collect():
            p = urllib.parse.urlsplit(u)
            if p.scheme in ("data", "blob", "about", "chrome", "devtools"):
                continue
            if (p.hostname or "") not in LOCAL_HOSTS:
                out.append(u)
        return out


def wait_until(predicate, timeout=10.0, step=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # element replaced while read: try again
            last = e
            last_ok = False
        else:
            last_ok = bool(last)
        if last_ok:
            return last
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def screenshot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    return path
