# ruff: noqa: F811  (the export_archive fixture is shadowed by test parameters)
"""The timeline in headless Chromium (selenium + Debian's chromium-driver): every clip of the day is a
mark on its camera's lane; clicking one plays it in place; ← / → move across cameras in time order; the
next clip plays when one ends; at 390 px nothing overflows. Set WEB_SCREENSHOTS=<folder> to keep the
desktop and phone screenshots."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_fixtures import chromium, have_chromium
from export_fixtures import ExportArchive, export_archive  # noqa: F401
from sqlmodel import Session, select

from archiver.db.engine import open_engine
from archiver.db.models import Clip, ClipState
from archiver.web.app import create_app
from archiver.web.server import WebServer

webdriver = pytest.importorskip("selenium.webdriver")
if not have_chromium():
    pytest.skip("chromium and chromedriver are not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def server(export_archive: ExportArchive) -> Iterator[WebServer]:
    engine = open_engine(export_archive.settings)
    srv = WebServer(
        create_app(export_archive.settings, engine), export_archive.settings.server, "127.0.0.1", 0
    )
    srv.start()
    yield srv
    srv.stop()
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def day_order(archive: ExportArchive) -> list[int]:
    """The ids of the day's clips (each network's local day) in time order across cameras."""
    from export_fixtures import BERLIN, CHICAGO

    engine = open_engine(archive.settings)
    try:
        with Session(engine) as s:
            rows = s.exec(select(Clip).where(Clip.state == ClipState.stored)).all()
    finally:
        engine.dispose()
    from datetime import UTC

    def local_day(c: Clip) -> object:
        tz = BERLIN if c.network_name == "Cabin" else CHICAGO
        return c.created_at.replace(tzinfo=UTC).astimezone(tz).date()

    return [
        c.id or 0
        for c in sorted((c for c in rows if local_day(c) == archive.day), key=lambda c: (c.created_at, c.id))
    ]


@pytest.mark.timeout(120)
def test_timeline_marks_play_in_place_and_arrows_move_across_cameras_in_time(
    server: WebServer, browser: object, export_archive: ExportArchive, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.get(f"{server.url}/timeline?day={export_archive.day}")  # type: ignore[attr-defined]
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, ".timeline.placed"), 10, "the marks placed")  # type: ignore[attr-defined]
    order = day_order(export_archive)
    marks = d.find_elements(By.CSS_SELECTOR, ".mark")  # type: ignore[attr-defined]
    assert sorted(int(m.get_attribute("data-id")) for m in marks) == sorted(order)  # every clip, every camera
    lanes = d.find_elements(By.CSS_SELECTOR, ".tl-group .tl-lane")  # type: ignore[attr-defined]
    assert [lane.find_element(By.CSS_SELECTOR, ".tl-name").text.split(" ")[0] for lane in lanes] == [
        "Porch",
        "Back",
        "Front",
    ]
    for lane in lanes:  # on the lane, later clips sit further right
        xs = [m.rect["x"] for m in lane.find_elements(By.CSS_SELECTOR, ".mark")]
        assert xs == sorted(xs) and all(
            lane.rect["x"] <= x <= lane.rect["x"] + lane.rect["width"] for x in xs
        )

    def current() -> int | None:
        got = d.execute_script(
            "var v = document.getElementById('tl-video'); return v.getAttribute('data-id')"
        )  # type: ignore[attr-defined]
        return int(got) if got else None

    def playing() -> bool:
        state = d.execute_script(  # type: ignore[attr-defined]
            "var v = document.getElementById('tl-video');"
            " return [v.readyState, v.currentTime, v.error && v.error.code];"
        )
        assert state[2] is None, f"the video failed: MediaError {state[2]}"
        return state[0] >= 2 and state[1] > 0

    third = next(m for m in marks if int(m.get_attribute("data-id")) == order[2])
    ActionChains(d).move_to_element(third).perform()
    tip = d.find_element(By.ID, "tl-tip")  # type: ignore[attr-defined]
    wait_for(lambda: tip.is_displayed() and "Front Door" in tip.text, 5, "the hover preview")
    third.click()
    wait_for(lambda: current() == order[2], 5, "the clicked clip in the player")
    assert d.current_url.endswith(f"day={export_archive.day}")  # type: ignore[attr-defined]  (played in place)
    wait_for(playing, 20, "the clip to play")
    d.execute_script("document.getElementById('tl-video').pause()")  # type: ignore[attr-defined]
    ActionChains(d).send_keys(Keys.ARROW_RIGHT).perform()  # Front Door 02:40 -> Back Yard 03:05
    wait_for(lambda: current() == order[3], 5, "→ to the next clip in time (another camera)")
    ActionChains(d).send_keys(Keys.ARROW_RIGHT).perform()  # -> Porch, Berlin's noon
    wait_for(lambda: current() == order[4], 5, "→ again")
    ActionChains(d).send_keys(Keys.ARROW_LEFT).send_keys(Keys.ARROW_LEFT).perform()
    wait_for(lambda: current() == order[2], 5, "← twice")
    wait_for(playing, 20, "the clip to play again")
    # the next clip plays by itself when one ends
    d.execute_script(
        "var v = document.getElementById('tl-video');"
        " v.currentTime = Math.max(0, v.duration - 0.05); v.play()"
    )  # type: ignore[attr-defined]
    wait_for(lambda: current() == order[3], 15, "the next clip after the end")
    ActionChains(d).send_keys("?").perform()
    assert d.find_element(By.ID, "help").is_displayed()  # type: ignore[attr-defined]
    ActionChains(d).send_keys(Keys.ESCAPE).perform()

    folder = Path(os.environ.get("WEB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(folder / "timeline-desktop.png"))  # type: ignore[attr-defined]
    d.set_window_size(390, 844)  # type: ignore[attr-defined]
    try:
        time.sleep(0.3)
        d.save_screenshot(str(folder / "timeline-phone.png"))  # type: ignore[attr-defined]
        width = d.execute_script("return document.documentElement.scrollWidth")  # type: ignore[attr-defined]
        wide = d.execute_script(  # type: ignore[attr-defined]
            "return Array.from(document.querySelectorAll('body *')).filter(function (e) {"
            " return e.getBoundingClientRect().right > 391; }).map(function (e) {"
            " return e.tagName + '.' + e.className; }).slice(0, 5)"
        )
        assert width <= 390, f"the page is {width} px wide at 390 px: {wide}"
        assert all(m.is_displayed() for m in d.find_elements(By.CSS_SELECTOR, ".mark"))  # type: ignore[attr-defined]
    finally:
        d.set_window_size(1280, 900)  # type: ignore[attr-defined]
    ActionChains(d).send_keys("]").perform()
    wait_for(
        lambda: "day=" in d.current_url and str(export_archive.day) not in d.current_url,
        10,
        "] to the next day",
    )  # type: ignore[attr-defined]
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert errors == [], errors
