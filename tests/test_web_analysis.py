"""What is in each clip, in the web UI and the export (issue 24): filter by tag and by minimum activity on
the camera, find and timeline pages; quiet clips dimmed; a tag chip on each clip; the status page lists
the silence watch's open alerts; ``archiver export --tag person --min-activity 0.1`` and the same on
``/export``; the tag filter in headless Chromium. Set WEB_SCREENSHOTS=<folder> to keep the screenshot."""

from __future__ import annotations

import asyncio
import io
import os
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_fixtures import chromium, have_chromium
from export_fixtures import CHICAGO, ExportArchive, build
from helpers import run_cli
from sqlmodel import Session, select

from archiver.analysis import Detection, Tag
from archiver.analysis.store import record_success
from archiver.config import SilenceSettings
from archiver.db.engine import open_engine, session_scope
from archiver.db.models import Clip
from archiver.silence import check
from archiver.web.app import create_app


@dataclass
class Analysed:
    archive: ExportArchive
    person: list[int]  # Front Door clips of the day with a person (one active, one quiet)
    active: list[int]  # clips of the day with activity >= 0.1
    quiet: list[int]  # clips with activity < 0.05
    car: int  # the Back Yard clip with a car


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analysed]:
    """The export archive, analysed through the database's own hook (``record_success``): Front Door's
    clips of the day score 0.4, 0.02, 0.3, 0.01 with a person in the first two; Back Yard's first clip
    has a car."""
    archive = build(tmp_path_factory.mktemp("analysed"))
    engine = open_engine(archive.settings)
    try:
        with session_scope(engine) as s:
            clips = sorted(s.exec(select(Clip)).all(), key=lambda c: c.created_at)
            day = [
                c for c in clips if c.created_at.replace(tzinfo=UTC).astimezone(CHICAGO).date() == archive.day
            ]
            front = [c.id for c in day if c.camera_name == "Front Door"]
            back = [c.id for c in day if c.camera_name == "Back Yard"]
            assert len(front) == 4 and len(back) == 2
            scores = dict(zip(front, (0.4, 0.02, 0.3, 0.01), strict=True))
            scores[back[0]], scores[back[1]] = 0.2, 0.03
            person = {front[0], front[1]}
            for clip_id, score in scores.items():
                assert clip_id is not None
                tags = [Tag(label="person", confidence=0.8, at_s=2.0)] if clip_id in person else []
                if clip_id == back[0]:
                    tags = [Tag(label="car", confidence=0.7, at_s=1.0)]
                results = {"motion": ("1", Detection(activity=score)), "onnx": ("1", Detection(tags=tags))}
                record_success(s, clip_id, results)
        yield Analysed(
            archive=archive,
            person=[front[0], front[1]],  # type: ignore[list-item]
            active=[i for i, v in scores.items() if v >= 0.1],  # type: ignore[misc]
            quiet=[i for i, v in scores.items() if v < 0.05],  # type: ignore[misc]
            car=back[0],  # type: ignore[arg-type]
        )
    finally:
        engine.dispose()


def get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
            return await c.get(path)

    return asyncio.run(go())


def linked(html: str) -> list[int]:
    """The clips a listing shows (each clip card links its page once)."""
    return sorted({int(m) for m in re.findall(r'class="clip" href="/clip/(\d+)"', html)})


def marks(html: str) -> list[int]:
    return sorted({int(m) for m in re.findall(r'class="mark[^"]*"[^>]*data-id="(\d+)"', html)})


def test_find_camera_and_timeline_pages_filter_by_tag_and_minimum_activity(analysed: Analysed) -> None:
    archive = analysed.archive
    engine = open_engine(archive.settings)
    try:
        app = create_app(archive.settings, engine)
        everything = get(app, "/clips").text
        assert set(analysed.person) < set(linked(everything))
        assert linked(get(app, "/clips?tag=person").text) == sorted(analysed.person)
        assert linked(get(app, "/clips?tag=car").text) == [analysed.car]
        assert linked(get(app, "/clips?tag=person&min_activity=0.1").text) == [analysed.person[0]]
        assert linked(get(app, "/clips?min_activity=0.1").text) == sorted(analysed.active)
        assert "No clips match." in get(app, "/clips?tag=dog").text
        assert linked(get(app, "/clips?min_activity=banana").text) == linked(everything)  # ignored
        # the tag filter's choices come from the archive; the chosen one stays selected
        page = get(app, "/clips?tag=car").text
        assert '<option value="car" selected>' in page and '<option value="person" >' in page

        with Session(engine) as s:
            front = s.get(Clip, analysed.person[0])
            assert front is not None
        cam = f"/camera/{front.account_id}/{front.camera_blink_id}"
        assert linked(get(app, f"{cam}?tag=person").text) == sorted(analysed.person)
        camera_page = get(app, f"{cam}?tag=person&min_activity=0.1").text
        assert linked(camera_page) == [analysed.person[0]]
        # the camera page's export link keeps the filter
        assert "tag=person" in camera_page and "min_activity=0.1" in camera_page

        day = archive.day.isoformat()
        assert set(analysed.person) <= set(marks(get(app, f"/timeline?day={day}").text))
        narrowed = get(app, f"/timeline?day={day}&tag=person").text
        assert marks(narrowed) == sorted(analysed.person)
        assert "tag=person" in narrowed.split('id="nextday"')[0]  # day navigation keeps the filter
        assert marks(get(app, f"/timeline?day={day}&min_activity=0.1").text) == sorted(analysed.active)
    finally:
        engine.dispose()


def test_quiet_clips_are_dimmed_and_each_clip_carries_its_tag_chips(analysed: Analysed) -> None:
    engine = open_engine(analysed.archive.settings)
    try:
        app = create_app(analysed.archive.settings, engine)
        html = get(app, "/clips").text
        for block in re.findall(r"<li[^>]*>.*?</li>", html, re.S):
            m = re.search(r'href="/clip/(\d+)"', block)
            if m is None:
                continue
            clip_id = int(m.group(1))
            assert ('class="quiet"' in block) == (clip_id in analysed.quiet), block
            chips = re.findall(r'<span class="tag tag-[a-z-]+">([a-z ]+)</span>', block)
            expected = (
                ["person"] if clip_id in analysed.person else ["car"] if clip_id == analysed.car else []
            )
            assert chips == expected, block
        clip_page = get(app, f"/clip/{analysed.person[0]}").text
        assert "<dt>Activity</dt><dd>0.40" in clip_page and 'href="/clips?tag=person">person</a>' in clip_page
        timeline = get(app, f"/timeline?day={analysed.archive.day.isoformat()}").text
        for clip_id in analysed.quiet:
            assert re.search(rf'class="mark [^"]*quiet[^"]*"[^>]*data-id="{clip_id}"', timeline)
    finally:
        engine.dispose()


def test_the_status_page_lists_the_open_silence_alerts(tmp_path_factory: pytest.TempPathFactory) -> None:
    archive = build(tmp_path_factory.mktemp("silent"))  # its clips are two days old
    engine = open_engine(archive.settings)
    try:
        app = create_app(archive.settings, engine)
        assert "Every camera records as usual." in get(app, "/status").text
        cfg = SilenceSettings(min_silence="1h", window_days=0.5, factor=1)  # quiet for 12 h is silent
        assert {a.name for a in check(engine, cfg).raised} == {"Front Door", "Back Yard", "Porch"}
        html = get(app, "/status").text
        section = html.split('id="silence"')[1].split("</section>")[0]
        assert section.count("camera silent") == 3 and "Front Door" in section and "no clip for" in section
    finally:
        engine.dispose()


def _zip_clips(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sorted(n for n in zf.namelist() if n.endswith(".mp4"))


def _keys(archive: ExportArchive, ids: list[int]) -> list[str]:
    engine = open_engine(archive.settings)
    try:
        with Session(engine) as s:
            return sorted(str(s.get(Clip, i).archive_key) for i in ids)  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_export_by_tag_and_minimum_activity_on_the_cli_and_the_web(
    analysed: Analysed, tmp_path: Path
) -> None:
    archive = analysed.archive
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_DATA_DIR"] = str(archive.settings.data_dir)
    out = tmp_path / "people.zip"
    r = run_cli(["export", "--tag", "person", "--min-activity", "0.1", "--out", str(out)], env)
    assert r.returncode == 0, r.stderr
    assert _zip_clips(out.read_bytes()) == _keys(archive, [analysed.person[0]])
    none = run_cli(["export", "--tag", "dog", "--out", str(tmp_path / "dog.zip")], env)
    assert none.returncode == 2 and "tagged dog" in none.stderr, none.stderr
    bad = run_cli(["export", "--min-activity", "2", "--out", str(tmp_path / "x.zip")], env)
    assert bad.returncode == 2

    engine = open_engine(archive.settings)
    try:
        app = create_app(archive.settings, engine)
        web = get(app, "/export?tag=person&min_activity=0.1")
        assert web.status_code == 200 and _zip_clips(web.content) == _keys(archive, [analysed.person[0]])
        both = get(app, "/export?tag=person&tag=car")
        assert _zip_clips(both.content) == _keys(archive, [*analysed.person, analysed.car])
    finally:
        engine.dispose()


@pytest.mark.timeout(120)
def test_the_tag_filter_in_chromium_shows_only_tagged_clips(analysed: Analysed) -> None:
    pytest.importorskip("selenium.webdriver")
    if not have_chromium():
        pytest.skip("chromium and chromedriver are not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from archiver.web.server import WebServer

    engine = open_engine(analysed.archive.settings)
    settings = analysed.archive.settings
    srv = WebServer(create_app(settings, engine), settings.server, "127.0.0.1", 0)
    srv.start()
    try:
        with chromium() as driver:
            driver.get(f"{srv.url}/clips")
            shown = lambda: sorted(  # noqa: E731
                int(str(a.get_attribute("href")).rsplit("/", 1)[1])
                for a in driver.find_elements(By.CSS_SELECTOR, "a.clip")
            )
            assert len(shown()) > len(analysed.person)
            Select(driver.find_element(By.NAME, "tag")).select_by_value("person")
            driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
            WebDriverWait(driver, 10).until(lambda d: "tag=person" in d.current_url)
            assert shown() == sorted(analysed.person)
            chips = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "a.clip .tag")]
            assert chips == ["person"] * len(analysed.person)
            quiet = driver.find_elements(By.CSS_SELECTOR, "li.quiet a.clip")
            assert len(quiet) == 1 and float(quiet[0].value_of_css_property("opacity")) < 0.9  # dimmed
            folder = Path(os.environ.get("WEB_SCREENSHOTS", "") or analysed.archive.settings.data_dir)
            folder.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(folder / "clips-tag-person.png"))
    finally:
        srv.stop()
        engine.dispose()
