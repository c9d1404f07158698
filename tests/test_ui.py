"""The observatory's page in a real browser (Debian's Chromium through its WebDriver) against a
real server with API keys and the inspector on: the histograms and counts follow the traffic,
the playground shows what /score says, the inspector finds an item, the audit runs, and without
a key nothing is shown."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import ROOT, Server

KEY = "observatory-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def ui_server():
    s = Server(env={"HARMO_API_KEYS": KEY, "HARMO_INSPECTOR_ITEMS": "50", "HARMO_OBSERVATORY_WINDOW": "200",
                    "HARMO_ALERT_MIN_ITEMS": "10"})
    yield s
    s.stop()


def new_browser() -> webdriver.Chrome:
    opts = Options()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))


@pytest.fixture(scope="module")
def browser():
    b = new_browser()
    yield b
    b.quit()


def wait(browser, condition, timeout: float = 60):
    """Until ``condition(browser)`` is truthy (the page polls its data every 2 s)."""
    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(condition)


def send(url: str, items: list[dict]) -> list[dict]:
    resp = httpx.post(f"{url}/score", json={"items": items}, headers=AUTH, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def math(n: int, start: int = 0, source: str = "gsm8k") -> list[dict]:
    return [{"id": f"{source}-{i}", "group_id": f"{source}-g{i // 4}", "data_source": source, "task": "math",
             "prompt": f"What is {i} + 1?", "reference": str(i + 1),
             "response": f"<think>{'add one. ' * (1 + i % 7)}</think><answer>{i + 1 if i % 3 else i}</answer>"}
            for i in range(start, start + n)]


def card(browser, key: str) -> str:
    return browser.find_element(By.ID, f"card-{key}").find_element(By.CLASS_NAME, "value").text


def counted(browser) -> int:
    try:
        return int(card(browser, "total").replace(",", ""))
    except Exception:  # noqa: BLE001 - not drawn yet
        return -1


def test_without_a_key_nothing_is_shown(ui_server):
    for path in ("/ui", "/ui/data", "/ui/app.js"):
        r = httpx.get(f"{ui_server.url}{path}")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), path
    assert httpx.post(f"{ui_server.url}/ui/audit").status_code == 401
    assert httpx.get(f"{ui_server.url}/ui", auth=("me", "wrong")).status_code == 401
    b = new_browser()
    try:
        b.get(f"{ui_server.url}/ui")
        assert b.title != "harmo reward observatory" and not b.find_elements(By.ID, "charts")
        assert any("401" in e["message"] for e in b.get_log("browser"))
    finally:
        b.quit()


def test_the_page_is_locked_down(ui_server):
    r = httpx.get(f"{ui_server.url}/ui", headers=AUTH)
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert KEY not in r.text and "http" not in r.text.replace("http-equiv", "")  # no secret, no CDN


def test_live_counts_and_histograms_follow_the_traffic(ui_server, browser):
    # the browser's own way in: the key as the Basic password (the page asks for it)
    host = ui_server.url.split("//", 1)[1]
    browser.get(f"http://me:{KEY}@{host}/ui")
    send(ui_server.url, math(40))
    wait(browser, lambda b: counted(b) == 40)
    reward = browser.find_element(By.CSS_SELECTOR, 'figure.chart[data-name="reward"]')
    first_n = int(reward.get_attribute("data-n"))
    assert first_n > 0 and reward.find_elements(By.CSS_SELECTOR, "rect.bar")
    names = {f.get_attribute("data-name") for f in browser.find_elements(By.CSS_SELECTOR, "figure.chart")}
    assert {"reward", "accuracy", "format", "length", "response length"} <= names
    send(ui_server.url, math(60, start=40))
    wait(browser, lambda b: counted(b) == 100)
    wait(browser, lambda b: int(b.find_element(By.CSS_SELECTOR, 'figure.chart[data-name="reward"]')
                                .get_attribute("data-n")) > first_n)
    sources = browser.find_element(By.ID, "sources").text
    assert "rule" in sources
    # a second data source appears in the selector, and its own counts are shown
    send(ui_server.url, math(12, source="aime"))
    wait(browser, lambda b: any("aime" in o.text for o in b.find_elements(By.CSS_SELECTOR, "#series option")))
    Select(browser.find_element(By.ID, "series")).select_by_visible_text("harmo / aime")
    wait(browser, lambda b: counted(b) == 12)
    assert "verifier: math" in browser.find_element(By.ID, "latency").text


def test_an_alert_shows_on_the_page(ui_server, browser):
    """A run of wrong answers after right ones moves the accuracy mean: the page says so."""
    right = [{"data_source": "shift", "task": "math", "reference": "2", "response": "<answer>2</answer>"}] * 30
    wrong = [{**it, "response": "<answer>3</answer>"} for it in right]
    send(ui_server.url, right)
    send(ui_server.url, wrong)
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, '.alert[data-alert="shift:accuracy"]'))
    metrics = httpx.get(f"{ui_server.url}/metrics").text
    assert 'harmo_reward_alert{alert="shift:accuracy",data_source="shift",profile="harmo"} 1.0' in metrics


def test_the_playground_shows_what_score_says(ui_server, browser):
    item = {"task": "math", "prompt": "What is 6 * 7?", "reference": "42",
            "response": "<think>six sevens</think><answer>42</answer> and more"}
    expected = httpx.post(f"{ui_server.url}/score", headers=AUTH, json={"items": [item], "explain": True}).json()
    want = expected["results"][0]
    browser.find_element(By.ID, "tab-playground").click()
    for field in ("prompt", "response", "reference"):
        box = browser.find_element(By.ID, f"pg-{field}")
        box.clear()
        box.send_keys(item[field])
    task = browser.find_element(By.ID, "pg-task")
    task.clear()
    task.send_keys("math")
    browser.find_element(By.ID, "pg-score").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#pg-result [data-component]"))
    shown = {row.get_attribute("data-component"): float(row.find_elements(By.TAG_NAME, "td")[1].text)
             for row in browser.find_elements(By.CSS_SELECTOR, "#pg-result tr[data-component]")}
    assert shown == pytest.approx(want["components"], abs=1e-3)
    deviation = browser.find_element(By.CSS_SELECTOR, '#pg-result table[data-part="format"]').text
    assert str(want["explain"]["format"]["deviation"]["at"]) in deviation
    result = browser.find_element(By.ID, "pg-result").text
    assert want["explain"]["accuracy"]["why"] in result
    # the audit of the profile, run from the page
    browser.find_element(By.ID, "audit-run").click()
    status = wait(browser, lambda b: "probes" in (t := b.find_element(By.ID, "audit-status").text) and t)
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit tr.audit-row")
    assert status.startswith(f"{len(rows)} probes, 0 failed") and len(rows) > 30


def test_the_inspector_finds_an_item_and_says_why(ui_server, browser):
    browser.find_element(By.ID, "tab-inspector").click()
    send(ui_server.url, [{"id": "inspect-me", "task": "math", "prompt": "What is 2 + 2?", "reference": "4",
                          "response": "<think>two and two</think><answer>4</answer>"}])
    row = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, 'tr.inspected[data-id="inspect-me"]'))[0]
    text = row.text
    assert "What is 2 + 2?" in text and "two and two" in text
    assert "rule:math" in text and "the rule's verdict stands" in text


def test_an_offline_report_draws_the_same_charts(browser, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(it) + "\n" for it in math(24)))
    p = subprocess.run([sys.executable, "-m", "harmo.server.cli", "score", str(src), str(tmp_path / "out.jsonl"),
                        "--report", str(tmp_path / "report.html")], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    browser.get((tmp_path / "report.html").as_uri())
    wait(browser, lambda b: counted(b) == 24)
    names = {f.get_attribute("data-name") for f in browser.find_elements(By.CSS_SELECTOR, "figure.chart")}
    assert {"reward", "accuracy", "format", "length", "response length"} <= names
    assert not browser.find_element(By.ID, "tab-playground").is_displayed()
