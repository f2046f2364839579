"""Issue #16: what a person sees in optuna-dashboard, as headless Chromium shows it at 1,400 px.

Serves a study database with `autoshield dashboard --read-only`, opens the study list, a study, a trial page and
the trial's reconstruction sheet, saves a screenshot of each, and fails when a page scrolls sideways (its
scroll width beyond the window). Needs Debian's chromium and chromium-driver and `pip install selenium`.

python benchmarks/dashboard_screens.py --storage sqlite:///studies/s.db --out docs/screens
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WIDTH, HEIGHT = 1400, 1000


def _wait(url: str, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"dashboard did not answer at {url}")


def _shot(driver: webdriver.Chrome, url: str, path: Path, *, settle: float = 4.0) -> int:
    """Screenshot `url`; returns the page's scroll width (> WIDTH: it scrolls sideways)."""
    driver.get(url)
    time.sleep(settle)  # the dashboard is a single-page app that fetches its data after load
    driver.save_screenshot(str(path))
    return int(driver.execute_script("return document.documentElement.scrollWidth"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--storage", required=True)
    p.add_argument("--out", type=Path, default=Path("docs/screens"))
    p.add_argument("--port", type=int, default=8093)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "autoshield.cli", "dashboard", "--storage", args.storage, "--port", str(args.port),
         "--read-only"],
    )  # fmt: skip
    try:
        _wait(f"{base}/api/studies")
        options = webdriver.ChromeOptions()
        for flag in ("--headless=new", "--no-sandbox", f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        widths = {"study list": _shot(driver, f"{base}/dashboard/", args.out / "study-list.png")}
        studies = driver.execute_script(f"return fetch('{base}/api/studies').then(r => r.json())")["study_summaries"]
        chosen = next((s for s in studies if s["study_name"].endswith("-search")), studies[0])
        study = f"{base}/dashboard/studies/{chosen['study_id']}"
        widths["study"] = _shot(driver, study, args.out / "study.png")
        widths["trial table"] = _shot(driver, f"{study}/trials", args.out / "trials.png")
        sheets = driver.find_elements(By.CSS_SELECTOR, "main img")
        print(f"reconstruction sheets on the trial page: {len(sheets)}")
        if sheets:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", sheets[0])
            time.sleep(1)
            driver.save_screenshot(str(args.out / "trial-sheets.png"))
            print(f"first sheet shown {sheets[0].size['width']} x {sheets[0].size['height']} px")
        driver.quit()
    finally:
        server.terminate()
        server.wait()
    for page, width in widths.items():
        print(f"{page}: scroll width {width} px (window {WIDTH})")
    wide = {page: width for page, width in widths.items() if width > WIDTH}
    if wide:
        raise SystemExit(f"pages scroll sideways: {wide}")


if __name__ == "__main__":
    main()
