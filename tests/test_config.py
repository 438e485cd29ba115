"""Settings: TOML + environment, defaults with no file, every key documented in the example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from archiver.config import S3DestinationSettings, Settings, load_settings
from archiver.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config" / "archiver.example.toml"


def test_defaults_work_with_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.database_url == f"sqlite:///{tmp_path / 'archiver.db'}"
    assert [d.type for d in s.destination_list()] == ["disk"]
    assert s.blink.max_requests_per_second > 0


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[blink]\nusername = "file@x"\nserver_url = "http://file"\n')
    monkeypatch.setenv("ARCHIVER_BLINK__SERVER_URL", "http://env")
    monkeypatch.setenv("ARCHIVER_DATABASE__URL", "sqlite:///x.db")
    s = load_settings(cfg)
    assert (s.blink.username, s.blink.server_url, s.database_url) == (
        "file@x",
        "http://env",
        "sqlite:///x.db",
    )
    assert s.blink.hosts("u011") == ("http://env", "http://env", "http://env")


def test_destinations_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_DESTINATIONS", '[{"type":"s3","bucket":"b"},{"type":"disk","path":"/a"}]')
    s = load_settings()
    assert isinstance(s.destinations[0], S3DestinationSettings) and s.destinations[1].path == Path("/a")


def test_regional_host_from_the_tier() -> None:
    s = load_settings()
    assert s.blink.hosts("e005")[2] == "https://rest-e005.immedia-semi.com"


def test_schedule_refuses_less_than_a_minute() -> None:
    with pytest.raises(ConfigError, match=r"schedule\.interval"):
        load_settings(None, schedule={"interval": "30s"})


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{key}.")
        else:
            out.append(prefix + key)
    return out


def test_every_setting_is_documented_in_the_example_config() -> None:
    text = EXAMPLE.read_text()
    missing = [
        k
        for k in _keys(Settings)
        if not re.search(rf"^#?\s*{re.escape(k.split('.')[-1])}\s*=|\[\[{k}\]\]|\[\[{k}\]\]", text, re.M)
        and k not in ("destinations", "accounts")
    ]
    assert missing == []
    load_settings(EXAMPLE)  # and it is a valid config
