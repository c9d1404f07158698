"""The README's picture of the observatory: a real server, seeded traffic (a policy that gets
better, then finds that shorter answers pay), the page in headless Chromium.

    python -m devtools.screenshot docs/observatory.png
"""
from __future__ import annotations

import random
import shutil
import sys
import time

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from devtools.servers import Server


def rollouts(rng: random.Random, step: int, n: int = 64) -> list[dict]:
    items = []
    for i in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        right = rng.random() < 0.35 + 0.1 * step
        words = max(1, int(rng.gauss(60 - 12 * step, 8)))
        think = " ".join(rng.choice(["so", "add", "carry", "then", "we", "get", "check"]) for _ in range(words))
        answer = a + b if right else a + b + rng.choice([-10, -1, 1, 2])
        body = f"<think>{think}</think><answer>{answer}</answer>" if rng.random() > 0.08 else f"{think} {answer}"
        items.append({"id": f"s{step}-{i}", "group_id": f"s{step}-{i // 8}", "data_source": "arith", "task": "math",
                      "prompt": f"What is {a} + {b}?", "reference": str(a + b), "response": body})
    return items


def main(out: str) -> None:
    server = Server(env={"HARMO_OBSERVATORY_WINDOW": "256", "HARMO_ALERT_MIN_ITEMS": "64",
                         "HARMO_ALERT_EVERY_S": "1"})
    try:
        rng = random.Random(7)
        for step in range(5):
            httpx.post(f"{server.url}/score", json={"items": rollouts(rng, step, 128)}, timeout=120).raise_for_status()
        opts = Options()
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--window-size=1300,1250", "--hide-scrollbars"):
            opts.add_argument(arg)
        browser = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
        try:
            browser.get(f"{server.url}/ui")
            WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "figure.chart rect.bar"))
            time.sleep(0.5)  # the fonts settle
            browser.save_screenshot(out)
        finally:
            browser.quit()
    finally:
        server.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/observatory.png")
