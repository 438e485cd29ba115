"""Headless Chromium for the web UI's browser tests (Debian's chromium and chromium-driver)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
# without the background-networking flags Chromium keeps trying hosts this closed network refuses
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
]


def have_chromium() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


@contextmanager
def chromium(size: str = "1280,900", logging: Mapping[str, str] | None = None) -> Iterator[Any]:
    """A headless Chromium driven by selenium; quit when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--window-size={size}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", dict(logging or {"browser": "ALL"}))
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
