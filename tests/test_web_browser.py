# ruff: noqa: F811  (the web_archive fixture imported from web_fixtures is shadowed by test parameters)
"""The web UI in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
selenium. Cameras page with loaded thumbnails → a camera → a clip whose video really plays; every request
the browser made stayed on the archiver's origin. Set WEB_SCREENSHOTS=<folder> to keep screenshots
(desktop and phone width) of every page visited."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from browser_fixtures import chromium, have_chromium
from web_fixtures import WebArchive, web_archive  # noqa: F401

from archiver.db.engine import open_engine
from archiver.web.app import create_app
from archiver.web.server import WebServer

webdriver = pytest.importorskip("selenium.webdriver")
if not have_chromium():
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def server(web_archive: WebArchive) -> Iterator[WebServer]:
    engine = open_engine(web_archive.settings)
    srv = WebServer(create_app(web_archive.settings, engine), web_archive.settings.server, "127.0.0.1", 0)
    srv.start()
    yield srv
    srv.stop()
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium(logging={"performance": "ALL", "browser": "ALL"}) as driver:
        yield driver


def requested_urls(driver: object) -> list[str]:
    """Every URL the browser asked for since the last call (from the DevTools performance log)."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def screenshot(driver: object, name: str) -> None:
    folder = os.environ.get("WEB_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for label, width, height in (("desktop", 1280, 860), ("phone", 390, 844)):
        driver.set_window_size(width, height)  # type: ignore[attr-defined]
        time.sleep(0.3)
        driver.save_screenshot(str(Path(folder) / f"{name}-{label}.png"))  # type: ignore[attr-defined]
    driver.set_window_size(1280, 900)  # type: ignore[attr-defined]


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(120)
def test_browse_cameras_then_play_a_clip_all_from_one_origin(server: WebServer, browser: object) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    origin = server.url
    d.get(origin + "/")  # type: ignore[attr-defined]
    assert d.title.startswith("Cameras")  # type: ignore[attr-defined]

    def thumbnails_loaded() -> bool:
        imgs = d.find_elements(By.CSS_SELECTOR, "img.thumb")  # type: ignore[attr-defined]
        return len(imgs) == 3 and all(
            d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)  # type: ignore[attr-defined]
            for i in imgs
        )

    wait_for(thumbnails_loaded, 15, "three camera thumbnails")
    screenshot(d, "cameras")

    d.find_element(By.PARTIAL_LINK_TEXT, "Front Door").click()  # type: ignore[attr-defined]
    wait_for(lambda: "/camera/" in d.current_url, 10, "the camera page")  # type: ignore[attr-defined]
    assert "Front Door" in d.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
    clips = d.find_elements(By.CSS_SELECTOR, "a.clip")  # type: ignore[attr-defined]
    assert len(clips) == 5
    wait_for(
        lambda: all(
            d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)  # type: ignore[attr-defined]
            for i in d.find_elements(By.CSS_SELECTOR, "a.clip img")  # type: ignore[attr-defined]
        ),
        15,
        "clip thumbnails",
    )
    screenshot(d, "camera")

    clips[1].click()
    wait_for(lambda: "/clip/" in d.current_url, 10, "the clip page")  # type: ignore[attr-defined]
    video = d.find_element(By.TAG_NAME, "video")  # type: ignore[attr-defined]
    d.execute_script("arguments[0].muted = true; arguments[0].play();", video)  # type: ignore[attr-defined]

    def playing() -> bool:
        state = d.execute_script(  # type: ignore[attr-defined]
            "var v = arguments[0]; return [v.readyState, v.currentTime, v.error && v.error.code];", video
        )
        assert state[2] is None, f"the video failed to load: MediaError {state[2]}"
        return state[0] >= 2 and state[1] > 0

    wait_for(playing, 20, "the video to play (readyState >= 2 and currentTime advancing)")
    duration = d.execute_script("return arguments[0].duration", video)  # type: ignore[attr-defined]
    assert duration and duration > 0.5
    screenshot(d, "clip")

    d.find_element(By.LINK_TEXT, "Status").click()  # type: ignore[attr-defined]
    wait_for(lambda: d.current_url.endswith("/status"), 10, "the status page")  # type: ignore[attr-defined]
    screenshot(d, "status")
    d.find_element(By.LINK_TEXT, "Find").click()  # type: ignore[attr-defined]
    wait_for(lambda: "/clips" in d.current_url, 10, "the filters page")  # type: ignore[attr-defined]
    screenshot(d, "clips")

    urls = requested_urls(d)
    media = [u for u in urls if "/media/" in u]
    assert any(u.endswith("/video") for u in media) and any(u.endswith("/thumbnail") for u in media)
    foreign = [u for u in urls if urlsplit(u).netloc != urlsplit(origin).netloc and not u.startswith("data:")]
    assert foreign == [], f"requests left the origin: {foreign}"
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert errors == [], errors


@pytest.mark.timeout(60)
def test_older_clips_load_in_place(web_archive: WebArchive, browser: object) -> None:
    """With two clips a page, "Older clips" appends the next pages to the same list, in time order."""
    from selenium.webdriver.common.by import By

    engine = open_engine(web_archive.settings)
    srv = WebServer(
        create_app(web_archive.settings, engine, page_size=2), web_archive.settings.server, "127.0.0.1", 0
    )
    srv.start()
    try:
        d = browser
        d.get(srv.url + "/clips")  # type: ignore[attr-defined]
        d.execute_script("window.sameDocument = true")  # type: ignore[attr-defined]
        for _ in range(10):
            more = d.find_elements(By.CSS_SELECTOR, ".more a[rel=next]")  # type: ignore[attr-defined]
            if not more:
                break
            shown = len(d.find_elements(By.CSS_SELECTOR, "a.clip"))  # type: ignore[attr-defined]
            more[0].click()
            wait_for(
                lambda n=shown: len(d.find_elements(By.CSS_SELECTOR, "a.clip")) > n,  # type: ignore[attr-defined]
                10,
                "the next page of clips",
            )
        ids = [
            int(a.get_attribute("href").rsplit("/", 1)[1])
            for a in d.find_elements(By.CSS_SELECTOR, "a.clip")  # type: ignore[attr-defined]
        ]
        assert len(ids) == 11 == len(set(ids))
        assert d.execute_script("return window.sameDocument") is True  # type: ignore[attr-defined]
        headings = [h.text for h in d.find_elements(By.CSS_SELECTOR, "section.day h2")]  # type: ignore[attr-defined]
        assert len(headings) == len(set(headings)), headings  # a day split across pages is merged
    finally:
        srv.stop()
        engine.dispose()
