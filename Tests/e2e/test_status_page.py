"""The status page at GET / in a real browser: headless Chromium (Debian's
`chromium` and `chromium-driver`) driven by selenium, against the real
binary, its real GET /status and real webhook receivers.

Every wait is a bounded poll (WebDriverWait or wait_until); nothing asserts
on elapsed time. The page redraws itself every few seconds, so reads go
through one script that returns what a row shows, and clicks are retried
when the row they found was replaced meanwhile.

`STATUS_PAGE_SCREENSHOT=docs/status-page.png python3 -m pytest
Tests/e2e/test_status_page.py -k three_environments` also writes the
screenshot used in the README.
"""
import base64
import hashlib
import os
import re
import shutil

import pytest
import requests

from conftest import TOKEN, wait_until
from receivers import FAST, Reply, receivers, provisiond  # noqa: F401 (fixtures)

CHROMIUM = os.environ.get("CHROMIUM_BIN") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("headless Chromium not found: install Debian's chromium and chromium-driver (make deps does)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402 (only once a browser is known to exist)
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 30  # seconds, the bound of every poll


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The viewport itself 1280x800 (a window of that size has less room for the page).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    yield driver
    driver.quit()


class StatusPage:
    """The page in one browser tab, read the way an operator reads it."""

    def __init__(self, driver, base_url):
        self.driver = driver
        self.url = base_url + "/"

    def open(self):
        self.driver.get(self.url)
        return self

    def until(self, condition, what):
        """Polls condition() (a truthy value ends the wait) for at most WAIT seconds."""
        return WebDriverWait(self.driver, WAIT, poll_frequency=0.1,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                             ).until(lambda _: condition(), message=f"waiting for {what}; page now:\n{self.text()}")

    def shown(self, element_id):
        return self.driver.find_element(By.ID, element_id).is_displayed()

    def text(self, element_id="dashboard"):
        try:
            login = self.driver.find_element(By.ID, "login")
            element = login if login.is_displayed() else self.driver.find_element(By.ID, element_id)
            return element.text
        except (NoSuchElementException, StaleElementReferenceException):
            return "(unreadable)"

    def sign_in(self, token):
        self.until(lambda: self.shown("login"), "the token prompt")
        field = self.driver.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token)
        self.driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()

    def environments(self):
        """{name: what its row shows}: state, backlog, oldest, rate, failed, error, retry result."""
        return self.driver.execute_script("""
            const rows = {};
            for (const tr of document.querySelectorAll('#env-rows tr')) {
              const cell = (c) => tr.querySelector(c).innerText.trim();
              const result = tr.querySelector('.retry-result');
              rows[tr.dataset.subscription] = {
                state: tr.querySelector('.badge').dataset.state, badge: cell('.badge'),
                backlog: cell('.backlog'), oldest: cell('.oldest'), rate: cell('.rate'), failed: cell('.failed'),
                error: cell('.last-error'),
                retried: result && {text: result.innerText.trim(), requeued: result.dataset.requeued}};
            }
            return rows;""")

    def failed_tenants(self):
        """[(domain, environment, last error)] of the failed tenants table as shown."""
        return [tuple(r) for r in self.driver.execute_script("""
            return Array.from(document.querySelectorAll('#failed-rows tr')).map((tr) => [
              tr.querySelector('.domain').innerText, tr.querySelector('.environment').innerText,
              tr.querySelector('.last-error').innerText]);""")]

    def summary(self):
        return {k: self.driver.find_element(By.ID, f"t-{k}").text
                for k in ("total", "pending", "provisioned", "failed")}

    def click_retry(self, name):
        def click():
            self.driver.find_element(By.CSS_SELECTOR, f'#env-rows tr[data-subscription="{name}"] button.retry').click()
            return True
        self.until(click, f"the Retry button of {name}")

    def csp_violations(self):
        return [e["message"] for e in self.driver.get_log("browser") if "Content Security Policy" in e["message"]]


def test_page_is_public_and_loads_nothing_from_elsewhere(api_service):
    r = requests.get(api_service.url + "/")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    html = r.text
    # No src/href but the empty data: favicon, no CSS import or url(): nothing is fetched but the API.
    assert re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html) == ["data:,"], html
    assert "@import" not in html and "url(" not in html
    csp = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
    assert csp["default-src"] == "'self'"
    # The inline style and script are admitted by their hashes, and only they.
    for kind in ("script", "style"):
        inline = re.findall(rf"<{kind}>(.*?)</{kind}>", html, re.S)
        assert len(inline) == 1, kind
        digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
        assert csp[f"{kind}-src"] == f"'sha256-{digest}'", (kind, csp)
    head = requests.head(api_service.url + "/")
    assert head.status_code == 200 and head.content == b""
    # The data it shows is not public.
    assert requests.get(api_service.url + "/status").status_code == 401


def test_token_prompt_accepts_the_token_once_and_returns_on_401(api_service, browser):
    page = StatusPage(browser, api_service.url).open()
    page.until(lambda: page.shown("login") and not page.shown("dashboard"), "the token prompt alone")

    page.sign_in("not-the-token")
    page.until(lambda: page.shown("login-error") and "not accepted" in page.text("login-error"),
               "the refused token to be said so")
    assert not page.shown("dashboard")

    page.sign_in(TOKEN)
    page.until(lambda: page.shown("dashboard") and not page.shown("login"), "the dashboard")
    page.until(lambda: page.shown("env-empty"), "the empty state of environments")
    assert "No environments yet" in page.text("env-empty")
    assert page.shown("failed-empty") and page.shown("waiting-empty")
    page.until(lambda: page.summary()["total"] == "0", "the tenants summary")
    assert browser.execute_script("return sessionStorage.getItem('provisiond.token')") == TOKEN

    # Asked once: a reload in the same tab goes straight to the dashboard.
    browser.refresh()
    page.until(lambda: page.shown("dashboard") and page.shown("env-empty"), "the dashboard after a reload")
    assert not page.shown("login")

    # A token the server no longer takes (a restart with another one) brings the prompt back.
    browser.execute_script("sessionStorage.setItem('provisiond.token', 'rotated-away')")
    page.until(lambda: page.shown("login") and page.shown("login-error"), "the prompt after a 401")
    assert browser.execute_script("return sessionStorage.getItem('provisiond.token')") is None

    # "Forget token" signs out on purpose, without an error.
    page.sign_in(TOKEN)
    page.until(lambda: page.shown("forget"), "the dashboard")
    browser.find_element(By.ID, "forget").click()
    page.until(lambda: page.shown("login") and not page.shown("login-error"), "the prompt after Forget token")
    assert page.csp_violations() == []


def test_down_environment_failed_tenants_and_retry(provisiond, receivers, browser):
    prod = receivers("prod", default=Reply(500, body=b"upstream exploded"))
    dev = receivers("dev")
    h = provisiond(*FAST, "--max-attempts", "2")
    h.subscribe("dev", dev.url)
    prod_id = h.subscribe("prod", prod.url)["id"]
    # Three tenants, two attempts each: six failures in a row at prod open its
    # breaker (five make it down), and every delivery to prod gives up.
    domains = [f"shop-{i}.example.com" for i in range(3)]
    tenants = [h.create_tenant(d) for d in domains]
    for t in tenants:
        h.wait_delivery(t["id"], prod_id, lambda d: d["state"] == "failed", what="prod giving up")

    page = StatusPage(browser, h.url).open()
    page.sign_in(TOKEN)

    def prod_down():
        rows = page.environments()
        return rows.get("prod", {}).get("state") == "down" and "HTTP 500" in rows["prod"]["error"] and rows
    rows = page.until(prod_down, "prod shown as down with its error")
    assert rows["prod"]["badge"] == "Down"
    assert rows["prod"]["failed"] == "3" and rows["prod"]["backlog"] == "0"
    page.until(lambda: page.environments()["dev"]["state"] == "up"
               and page.environments()["dev"]["rate"] == "3", "dev up with 3 delivered in the last minute")

    page.until(lambda: sorted(page.failed_tenants()) == [(d, "prod", "HTTP 500") for d in domains],
               "the three failed tenants listed with prod and its error")
    page.until(lambda: page.summary() == {"total": "3", "pending": "0", "provisioned": "0", "failed": "3"},
               "the tenants summary")

    # The environment is mended; Retry requeues the failed deliveries and they go through.
    prod.answer(Reply(204))
    page.click_retry("prod")
    retried = page.until(lambda: page.environments()["prod"]["retried"], "the answer of Retry")
    assert retried["requeued"] == "3" and retried["text"].startswith("Requeued 3 deliveries"), retried
    page.until(lambda: page.shown("failed-empty"), "no failed tenants left")
    page.until(lambda: page.summary() == {"total": "3", "pending": "0", "provisioned": "3", "failed": "0"},
               "every tenant provisioned")
    page.until(lambda: page.environments()["prod"]["state"] == "up", "prod up again")
    for t in tenants:
        assert h.tenant(t["id"])["status"] == "provisioned"
    assert page.csp_violations() == []


def test_three_environments_at_a_glance(provisiond, receivers, browser, tmp_path):
    """dev up, test paused, prod down with its error, a failed tenant and a
    backlog waiting: the picture in docs/status-page.png."""
    dev = receivers("dev")
    test = receivers("test")
    prod = receivers("prod", default=Reply(503, body=b"maintenance"))
    data_dir = str(tmp_path / "data")
    # First run: one tenant whose five attempts at prod all fail; it gives up and prod counts as down.
    h = provisiond(*FAST, "--max-attempts", "5", data_dir=data_dir)
    h.subscribe("dev", dev.url)
    test_id = h.subscribe("test", test.url)["id"]
    prod_id = h.subscribe("prod", prod.url)["id"]
    h.patch(test_id, paused=True)
    failed = h.create_tenant("globex.com")
    h.wait_delivery(failed["id"], prod_id, lambda d: d["state"] == "failed", what="globex.com failed at prod")
    h.stop()
    # Second run, retrying forever: prod stays down (the state survives a restart) and collects a backlog.
    h = provisiond("--retry-initial", "500ms", "--retry-max", "1m", data_dir=data_dir)
    waiting = ["acme.com", "initech.io", "umbrella-corp.net", "hooli.xyz"]
    for domain in waiting:
        h.create_tenant(domain)
    wait_until(lambda: len(dev.ids()) == 5, what="dev acknowledging every tenant")

    page = StatusPage(browser, h.url).open()
    page.sign_in(TOKEN)

    def shown():
        rows = page.environments()
        states = {name: row["state"] for name, row in rows.items()}
        return (states == {"dev": "up", "test": "paused", "prod": "down"} and "HTTP 503" in rows["prod"]["error"]
                and rows["prod"]["backlog"] == "4" and rows["test"]["backlog"] == "5" and rows)
    page.until(shown, "three environments: dev up, test paused, prod down")
    page.until(lambda: page.failed_tenants() == [("globex.com", "prod", "HTTP 503")], "globex.com failed at prod")
    page.until(lambda: sorted(browser.execute_script(
        "return Array.from(document.querySelectorAll('#waiting-rows tr')).map((tr) => tr.dataset.domain)"))
        == sorted(waiting), "the waiting tenants")
    page.until(lambda: page.summary() == {"total": "5", "pending": "4", "provisioned": "0", "failed": "1"},
               "the tenants summary")
    assert page.csp_violations() == []

    target = os.environ.get("STATUS_PAGE_SCREENSHOT")
    if target:
        # A picture with ages an operator would see, not a backlog a second old.
        page.until(lambda: not re.fullmatch(r"[0-9]s", page.environments()["prod"]["oldest"]), "an older backlog")
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(target), target
    full = os.environ.get("STATUS_PAGE_FULL_SCREENSHOT")  # the whole page, for a look below the fold
    if full:
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
        assert browser.save_screenshot(full), full
