"""The dashboard's A/B tests page and its token flow in a real browser (issue 6): headless
Debian Chromium driven by Selenium against its own stack (API and two workers, ASan builds,
60 days of demo data, two baseline versions of one machine trained through the API by the
workers). Starts a test through the form, lists it (GET /api/v1/model-performance/ab-tests),
opens its results (no samples, too few, then a p-value), promotes B (checked in
model_versions); the form's own checks end in a toast; a faked 401 (a second DevTools client
pausing requests with Fetch.enable) brings up the token dialog once, the token goes to
sessionStorage and every later call, the event stream included, carries it. No request may go
to any host but localhost."""
import base64
import datetime
import json
import re
import threading
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from dashboard_util import NetLog, Stack, chromium_driver, screenshot, wait_until
from pipeline import trigger, wait_status

HVAC = "c0000000-0000-0000-0000-000000000002"
SEED_END = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
START_PATH = "/api/v1/model-performance/ab-test/start"


@pytest.fixture(scope="module")
def stack(admin_dsn, redis_url, bin_dir, tmp_path_factory):
    s = Stack(admin_dsn, redis_url, bin_dir, str(tmp_path_factory.mktemp("dashab")), SEED_END, 60)
    yield s
    bad = s.close()
    assert not bad, "\n".join(bad)


@pytest.fixture(scope="module")
def versions(stack):
    """Two baseline versions of HVAC trained by the workers on 35 and 50 days, as
    (id, version) pairs: the 35-day one first; the 50-day one (trained last) is active."""
    out = []
    for days in (35, 50):
        r = trigger(stack.base, "baseline", HVAC, params={"days": days})
        assert r.status_code == 202, r.text
        job_id = r.json()["training_job_id"]
        row = wait_status(stack.dsn, job_id, ("completed", "failed"), timeout=90)
        assert row["status"] == "completed", row
        out.append(stack.query("SELECT v.id::text, v.version FROM model_training_history h "
                               "JOIN model_versions v ON v.id = h.result_version_id WHERE h.id = %s",
                               (job_id,))[0])
    assert active_versions(stack) == [out[1][0]]
    return out


@pytest.fixture(scope="module")
def browser(stack):
    drv = chromium_driver()
    net = NetLog(drv)
    yield drv, net
    drv.quit()


@pytest.fixture(autouse=True)
def no_foreign_requests(browser):
    """After every test, no page asked any host but localhost."""
    yield
    _, net = browser
    assert net.foreign() == [], "requests to other hosts"


def active_versions(stack):
    return [r[0] for r in stack.query("SELECT id::text FROM model_versions WHERE machine_id = %s "
                                      "AND model_type = 'baseline' AND is_active", (HVAC,))]


def open_page(drv, stack, page):
    drv.get(f"{stack.base}/#/{page}")
    wait_until(lambda: not drv.find_element(By.ID, f"page-{page}").get_attribute("hidden"),
               what=f"page {page} shown")


def toasts(drv):
    return [(t.find_element(By.CLASS_NAME, "toast-title").text, t.find_element(By.CLASS_NAME, "toast-msg").text,
             t.get_attribute("class")) for t in drv.find_elements(By.CSS_SELECTOR, "#toasts .toast")]


def clear_toasts(drv):
    drv.execute_script("document.getElementById('toasts').replaceChildren()")


def wait_toast(drv, title, timeout=10):
    try:
        return wait_until(lambda: next((t for t in toasts(drv) if t[0] == title), None), timeout=timeout,
                          what=f"toast {title!r}")
    except AssertionError as e:
        console = [f"{m['level']} {m['message']}" for m in drv.get_log("browser")]
        raise AssertionError(f"{e}; toasts shown: {toasts(drv)}; console: {console}") from None


class PerfLog:
    """The requests in the DevTools performance log since the last reset() (what is read here
    also feeds NetLog, whose foreign-host check would otherwise miss it)."""

    def __init__(self, drv, net):
        self.drv, self.net = drv, net
        self.msgs = []

    def _read(self):
        for entry in self.drv.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            self.msgs.append(msg)
            if msg.get("method") == "Network.requestWillBeSent":
                self.net.urls.append(msg["params"]["request"]["url"])

    def reset(self):
        self._read()
        self.msgs = []

    def requests(self, path_part):
        """[(request, status)] of the requests whose URL contains path_part, in order;
        status None when no answer was logged."""
        self._read()
        reqs, status = [], {}
        for msg in self.msgs:
            if msg.get("method") == "Network.requestWillBeSent":
                r = msg["params"]["request"]
                if path_part in r["url"]:
                    reqs.append((msg["params"]["requestId"], r))
            elif msg.get("method") == "Network.responseReceived":
                status[msg["params"]["requestId"]] = msg["params"]["response"]["status"]
        return [(r, status.get(rid)) for rid, r in reqs]


def select(drv, select_id, value):
    Select(drv.find_element(By.ID, select_id)).select_by_value(value)


def set_value(drv, input_id, text):
    f = drv.find_element(By.ID, input_id)
    f.clear()
    f.send_keys(text)


def fill_form(drv, a_id, b_id, name, hours="24"):
    select(drv, "ab-machine", HVAC)
    select(drv, "ab-model-type", "baseline")
    wait_until(lambda: drv.find_element(By.ID, "ab-form").get_attribute("data-versions") == "2",
               what="both versions loaded")
    select(drv, "ab-a", a_id)
    select(drv, "ab-b", b_id)
    set_value(drv, "ab-name", name)
    set_value(drv, "ab-hours", hours)


def results_field(drv, label):
    """The text of the results list's <dd> after the <dt> labelled label."""
    return drv.find_element(By.XPATH, f"//dl[@id='ab-results-body']/dt[text()='{label}']"
                                      "/following-sibling::dd[1]").text


def open_results(drv, test_id):
    """Clicks the test's Results button in the list and waits for its results."""
    drv.find_element(By.CSS_SELECTOR, f'#ab-list li[data-test-id="{test_id}"] button').click()
    panel = drv.find_element(By.ID, "ab-results")
    wait_until(lambda: panel.get_attribute("data-test-id") == test_id and panel.get_attribute("data-status"),
               what="results shown")


def add_samples(stack, test_id, days):
    """One paired daily sample per day in days: loss_a = 20 + day, loss_b = 10."""
    for day in days:
        stack.query("INSERT INTO model_ab_test_samples (test_id, sample_ts, loss_a, loss_b) "
                    "VALUES (%s, date_trunc('day', now()) - make_interval(days => %s), %s, 10)",
                    (test_id, day, 20.0 + day))


def test_start_list_results_and_promote_b(stack, versions, browser):
    drv, net = browser
    log = PerfLog(drv, net)
    (old_id, old_ver), (new_id, new_ver) = versions
    # A: the active 50-day version; B: the older 35-day one, so promoting B changes something.
    a_id, a_ver, b_id, b_ver = new_id, new_ver, old_id, old_ver
    open_page(drv, stack, "abtests")
    wait_until(lambda: drv.find_elements(By.CSS_SELECTOR, "#ab-empty:not([hidden])"), what="empty list")
    log.reset()
    fill_form(drv, a_id, b_id, "35 vs 50 days")
    drv.find_element(By.ID, "ab-start").click()
    _, msg, cls = wait_toast(drv, "A/B Test Started")
    assert "toast-success" in cls
    m = re.fullmatch(r"Test ID: ([0-9a-f-]{36})", msg)
    assert m, msg
    test_id = m.group(1)
    assert stack.query("SELECT test_name, model_a_id::text, model_b_id::text, test_status, duration_ok "
                       "FROM (SELECT *, test_end - test_start = interval '24 hours' AS duration_ok "
                       "FROM model_ab_tests WHERE id = %s) t", (test_id,)) == \
        [("35 vs 50 days", a_id, b_id, "running", True)]
    # What the page sent and what the API answered.
    sent = log.requests(START_PATH)
    assert len(sent) == 1 and sent[0][0]["method"] == "POST" and sent[0][1] == 201, sent
    assert json.loads(sent[0][0]["postData"]) == {
        "test_name": "35 vs 50 days", "machine_id": HVAC, "model_type": "baseline", "model_a_id": a_id,
        "model_b_id": b_id, "duration_hours": 24, "traffic_split": 0.5, "confidence_level": 0.95}

    # Listed from GET /ab-tests, running.
    li = wait_until(lambda: drv.find_element(By.CSS_SELECTOR, f'#ab-list li[data-test-id="{test_id}"]'),
                    what="test in the list")
    assert li.get_attribute("data-status") == "running"
    assert f"35 vs 50 days · HVAC-Main · Energy Baseline · v{a_ver} vs v{b_ver}" in li.text
    assert drv.find_element(By.ID, "ab-empty").get_attribute("hidden") is not None
    assert any("/api/v1/model-performance/ab-tests?status=running" in r["url"]
               for r, _ in log.requests("/ab-tests"))

    # Results opened by the start: no paired samples yet.
    panel = drv.find_element(By.ID, "ab-results")
    wait_until(lambda: panel.get_attribute("data-test-id") == test_id and panel.get_attribute("data-status"),
               what="results shown")
    assert results_field(drv, "Recommendation") == (
        "No paired samples yet: every evaluation during the test scores both versions on the same new data "
        "(POST /api/v1/evaluate runs one now).")
    assert results_field(drv, "Paired samples") == "0 (at least 10 needed)"
    assert results_field(drv, "p-value") == "–"
    # Too few samples (4 of the 10 a baseline test needs).
    add_samples(stack, test_id, range(1, 5))
    open_results(drv, test_id)
    wait_until(lambda: results_field(drv, "Paired samples") == "4 (at least 10 needed)", what="4 samples")
    assert results_field(drv, "Recommendation") == (
        "Only 4 paired samples; at least 10 are needed before a winner is declared. Let the test run longer.")
    assert results_field(drv, "Winner") == "no winner"
    # 12 samples, B's loss smaller on each, all differences distinct: Wilcoxon V = 78 = the
    # maximum, exact two-sided p = 2 / 2^12 = 0.00048828125.
    add_samples(stack, test_id, range(5, 13))
    drv.find_element(By.ID, "ab-open-id").send_keys(test_id)
    drv.find_element(By.CSS_SELECTOR, "#ab-open button[type=submit]").click()
    wait_until(lambda: results_field(drv, "Paired samples") == "12 (at least 10 needed)", what="12 samples")
    assert results_field(drv, "p-value") == "0.0004883"
    assert results_field(drv, "Statistical test") == "wilcoxon_signed_rank on absolute_error"
    assert results_field(drv, "Winner") == f"model_b (v{b_ver})"
    assert results_field(drv, "Decision") == "not decided"
    drv.execute_script("document.getElementById('ab-results').scrollIntoView()")
    screenshot(drv, "abtests-results")

    # Decide: promote B.
    clear_toasts(drv)
    assert active_versions(stack) == [a_id]
    promote = drv.find_element(By.ID, "ab-promote-b")
    assert promote.text == f"Promote B (v{b_ver})" and promote.is_enabled()
    promote.click()
    _, msg, _ = wait_toast(drv, "Decision Recorded")
    assert msg == f"promote b: version v{b_ver} is now active"
    assert active_versions(stack) == [b_id]
    assert stack.query("SELECT test_status, decision, decided_by, winner_model_id::text FROM model_ab_tests "
                       "WHERE id = %s", (test_id,)) == [("completed", "promote_b", "dashboard", b_id)]
    wait_until(lambda: panel.get_attribute("data-decision") == "promote_b", what="decided on the page")
    assert panel.get_attribute("data-status") == "completed"
    assert results_field(drv, "Decision").startswith("promote b by dashboard at ")
    assert all(not drv.find_element(By.ID, b).is_enabled() for b in ("ab-promote-a", "ab-promote-b", "ab-no-winner"))
    li = wait_until(lambda: (lambda e: e.get_attribute("data-status") == "completed" and e)(
        drv.find_element(By.CSS_SELECTOR, f'#ab-list li[data-test-id="{test_id}"]')), what="list shows completed")
    assert li.get_attribute("data-decision") == "promote_b" and "promote b" in li.text


def count_tests(stack):
    return stack.query("SELECT count(*) FROM model_ab_tests")[0][0]


def test_form_problems_and_conflicts_end_in_a_toast(stack, versions, browser):
    """Every way a start can fail is said in a toast: a field the page refuses (no request
    sent, nothing written), a fractional duration (once refused silently by the browser's own
    check) starts, and a second test of the same machine and type is a 409 naming the first."""
    drv, net = browser
    log = PerfLog(drv, net)
    (old_id, _), (new_id, _) = versions
    open_page(drv, stack, "abtests")
    clear_toasts(drv)
    before = count_tests(stack)
    log.reset()
    fill_form(drv, old_id, new_id, "too long", hours="5000")
    drv.find_element(By.ID, "ab-start").click()
    _, msg, cls = wait_toast(drv, "Could Not Start Test")
    assert "toast-error" in cls and msg.startswith("Duration (hours): "), msg
    assert drv.switch_to.active_element.get_attribute("id") == "ab-hours"
    fill_form(drv, old_id, old_id, "same twice")
    clear_toasts(drv)
    drv.find_element(By.ID, "ab-start").click()
    _, msg, _ = wait_toast(drv, "Could Not Start Test")
    assert msg == "Version B: choose a version other than A."
    assert log.requests(START_PATH) == [] and count_tests(stack) == before

    fill_form(drv, old_id, new_id, "short", hours="0.5")
    clear_toasts(drv)
    drv.find_element(By.ID, "ab-start").click()
    _, msg, _ = wait_toast(drv, "A/B Test Started")
    first = msg.removeprefix("Test ID: ")
    assert stack.query("SELECT test_end - test_start = interval '30 minutes' FROM model_ab_tests WHERE id = %s",
                       (first,)) == [(True,)]
    clear_toasts(drv)
    drv.find_element(By.ID, "ab-start").click()
    _, msg, cls = wait_toast(drv, "Could Not Start Test")
    assert "toast-error" in cls and msg.endswith(f"(test {first})"), msg
    assert count_tests(stack) == before + 1
    assert [s for _, s in log.requests(START_PATH)] == [201, 409]


class FetchFake(threading.Thread):
    """A second DevTools client on the page's target: pauses the requests matching patterns
    (Fetch.enable), answers the first `fail` requests whose URL contains fail_part with a 401
    and lets every other one through, recording (url, headers, faked) of each."""

    def __init__(self, ws_url, patterns, fail_part, fail=1):
        super().__init__(daemon=True)
        self.ws_url, self.patterns, self.fail_part, self.fail = ws_url, patterns, fail_part, fail
        self.paused = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error = None

    def run(self):
        import trio
        import trio_websocket

        async def main():
            async with trio_websocket.open_websocket_url(self.ws_url, max_message_size=64 << 20) as ws:
                await ws.send_message(json.dumps({"id": 1, "method": "Fetch.enable", "params": {
                    "patterns": [{"urlPattern": p, "requestStage": "Request"} for p in self.patterns]}}))
                next_id = 2
                while not self.done.is_set():
                    # Only the wait for a message may time out: a reply cancelled half-sent
                    # would leave its request paused in the browser for ever.
                    raw = None
                    with trio.move_on_after(0.05):
                        raw = await ws.get_message()
                    if raw is None:
                        continue
                    msg = json.loads(raw)
                    if msg.get("id") == 1:
                        self.ready.set()
                    if msg.get("method") != "Fetch.requestPaused":
                        continue
                    p = msg["params"]
                    url, headers = p["request"]["url"], p["request"]["headers"]
                    fake = self.fail > 0 and self.fail_part in url
                    self.paused.append((url, headers, fake))
                    if fake:
                        self.fail -= 1
                        cmd = {"method": "Fetch.fulfillRequest", "params": {
                            "requestId": p["requestId"], "responseCode": 401,
                            "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                            "body": base64.b64encode(b'{"detail": "bearer token required"}').decode()}}
                    else:
                        cmd = {"method": "Fetch.continueRequest", "params": {"requestId": p["requestId"]}}
                    cmd["id"] = next_id
                    next_id += 1
                    await ws.send_message(json.dumps(cmd))
                await ws.send_message(json.dumps({"id": next_id, "method": "Fetch.disable"}))

        try:
            trio.run(main)
        except BaseException as e:  # reported by the test
            self.error = e
            self.ready.set()

    def stop(self):
        self.done.set()
        self.join(5)


def page_ws_url(drv, base):
    addr = drv.capabilities["goog:chromeOptions"]["debuggerAddress"]
    with urllib.request.urlopen(f"http://{addr}/json", timeout=5) as r:
        targets = json.load(r)
    pages = [t for t in targets if t.get("type") == "page" and t.get("url", "").startswith(base)]
    assert len(pages) == 1, targets
    return pages[0]["webSocketDebuggerUrl"]


def auth(headers):
    return next((v for k, v in headers.items() if k.lower() == "authorization"), None)


def test_401_asks_for_the_token_once_and_sends_it_everywhere(stack, browser):
    drv, net = browser
    log = PerfLog(drv, net)
    open_page(drv, stack, "abtests")
    drv.execute_script("sessionStorage.clear()")
    fake = FetchFake(page_ws_url(drv, stack.base), ["*/api/v1/machines*", "*/api/v1/events*"], "/api/v1/machines")
    fake.start()
    try:
        assert fake.ready.wait(10) and fake.error is None, fake.error
        log.reset()
        drv.refresh()
        dialog = drv.find_element(By.ID, "token-dialog")
        wait_until(lambda: dialog.get_attribute("open") is not None, what="token dialog open")
        assert drv.switch_to.active_element.get_attribute("id") == "token-input"
        screenshot(drv, "token-dialog")
        drv.find_element(By.ID, "token-input").send_keys("s3cret-token")
        drv.find_element(By.ID, "token-ok").click()
        wait_until(lambda: dialog.get_attribute("open") is None, what="token dialog closed")
        # The retried call worked: the machines are there, and the stream is live.
        wait_until(lambda: len(Select(drv.find_element(By.ID, "ab-machine")).options) == 8, what="8 machines")
        # A stream attempt that failed while the token was asked for waits out
        # its reconnect delay (3 s) first; on a loaded CI host that has taken > 10 s.
        wait_until(lambda: drv.find_element(By.ID, "live-status").get_attribute("data-state") == "live",
                   timeout=30, what="event stream live")
        assert drv.execute_script("return sessionStorage.getItem('enms_api_token')") == "s3cret-token"
        wait_until(lambda: any("/api/v1/events" in u for u, _, _ in fake.paused), what="stream request paused")
        seen = [(u.removeprefix(stack.base), auth(h), f) for u, h, f in fake.paused]
        assert seen[:3] == [("/api/v1/machines", None, True), ("/api/v1/machines", "Bearer s3cret-token", False),
                            ("/api/v1/events", "Bearer s3cret-token", False)], seen
        # Every /api call after the first 401 carried the token (the performance log).
        calls = [(r["url"].removeprefix(stack.base), auth(r["headers"]), s) for r, s in log.requests("/api/")]
        assert calls[0] == ("/api/v1/machines", None, 401), calls
        assert len(calls) >= 4 and all(a == "Bearer s3cret-token" for _, a, _ in calls[1:]), calls

        # Kept for the session: a reload asks nothing and sends it from the first call.
        n = len(fake.paused)
        drv.refresh()
        wait_until(lambda: len(Select(drv.find_element(By.ID, "ab-machine")).options) == 8, what="8 machines")
        assert drv.find_element(By.ID, "token-dialog").get_attribute("open") is None
        assert [(u.removeprefix(stack.base), auth(h), f) for u, h, f in fake.paused[n:n + 1]] == [
            ("/api/v1/machines", "Bearer s3cret-token", False)]
    finally:
        fake.stop()
        drv.execute_script("sessionStorage.clear()")
    assert fake.error is None, fake.error
