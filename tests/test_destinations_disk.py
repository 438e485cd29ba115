from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from destination_suite import DestinationSuite, Tamper, make_file

from archiver.config import DiskDestinationSettings, S3DestinationSettings, Settings, load_settings
from archiver.destinations import BACKENDS, DiskDestination, build_destinations, unique_names
from archiver.destinations import disk as disk_module
from archiver.destinations.base import DestinationError, PutItem, is_temporary_key, put_many
from archiver.util import sha256_file

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


@pytest.fixture
def dest(tmp_path: Path) -> DiskDestination:
    return DiskDestination(tmp_path / "archive")


class TestDiskConformance(DestinationSuite):
    @pytest.fixture
    def tamper(self, dest: DiskDestination) -> Tamper:
        def write(key: str, data: bytes) -> None:
            path = dest.root / key
            path.unlink()  # a hard link shares the staged file's inode: replace, never write through
            path.write_bytes(data)

        return write

    @pytest.fixture
    def broken(self, tmp_path: Path) -> DiskDestination:
        (tmp_path / "a-file").write_bytes(b"")
        return DiskDestination(tmp_path / "a-file" / "archive", "nas")


def test_emptied_folders_are_tidied_but_not_the_root(tmp_path: Path, dest: DiskDestination) -> None:
    src, sha = make_file(tmp_path / "staging" / "a.mp4", b"a" * 100)
    key = "Home/Front Door/2024-05-01/12-00-00_42.mp4"
    dest.put(src, key, sha256=sha, metadata={})
    assert (tmp_path / "archive" / key).read_bytes() == b"a" * 100
    dest.delete(key)
    assert not (tmp_path / "archive" / "Home").exists()
    assert (tmp_path / "archive").is_dir()


def test_archive_files_and_folders_are_private_by_default(tmp_path: Path) -> None:
    src, sha = make_file(tmp_path / "staging" / "p.mp4", b"p" * 100)
    private = DiskDestination(tmp_path / "private")
    private.put(src, "Home/cam/p.mp4", sha256=sha, metadata={})
    assert stat.S_IMODE((tmp_path / "private" / "Home/cam/p.mp4").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "private" / "Home/cam").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "private" / "Home").stat().st_mode) == 0o700
    src2, sha2 = make_file(tmp_path / "staging" / "q.mp4", b"q" * 100)
    shared = DiskDestination(tmp_path / "shared", shared=True)
    shared.put(src2, "Home/cam/q.mp4", sha256=sha2, metadata={})
    assert stat.S_IMODE((tmp_path / "shared" / "Home/cam/q.mp4").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "shared" / "Home/cam").stat().st_mode) == 0o755


def test_the_shared_setting_reaches_the_destination(tmp_path: Path) -> None:
    built = build_destinations(
        Settings(data_dir=tmp_path, destinations=[{"type": "disk", "permissions": "shared"}])
    )
    assert isinstance(built[0], DiskDestination) and built[0].file_mode == 0o644


def test_preflight_refuses_a_nearly_full_disk(tmp_path: Path) -> None:
    dest = DiskDestination(tmp_path / "archive", min_free_bytes=1 << 62)
    with pytest.raises(DestinationError, match=r"disk full \(\d+ MB free, min_free_mb is \d+\)"):
        dest.preflight()


def test_preflight_creates_the_root_and_leaves_nothing(tmp_path: Path) -> None:
    dest = DiskDestination(tmp_path / "new" / "archive")
    assert dest.preflight() == []
    assert list((tmp_path / "new" / "archive").iterdir()) == []


MINIMAL = {  # the settings each registered type cannot do without
    "disk": {},
    "s3": {"bucket": "b"},
    "sftp": {"host": "nas.invalid", "username": "u", "password": "p"},
    "webdav": {"url": "https://nas.invalid/dav"},
    "smb": {"host": "nas.invalid", "share": "archive"},
    "fsspec": {"url": "memory://archive"},
}


def test_every_registered_type_builds_from_its_settings(tmp_path: Path) -> None:
    assert set(BACKENDS) == set(MINIMAL)
    built = build_destinations(
        Settings(data_dir=tmp_path, destinations=[{"type": t, **MINIMAL[t]} for t in BACKENDS])
    )
    assert [d.name for d in built] == list(BACKENDS)
    assert [type(d).__name__.lower() for d in built] == [f"{t}destination" for t in BACKENDS]


def test_same_filesystem_put_is_a_hard_link(tmp_path: Path, dest: DiskDestination) -> None:
    data = b"clip bytes" * 1000
    src, sha = make_file(tmp_path / "staging" / "b.mp4", data)
    dest.put(src, "cam/b.mp4", sha256=sha, metadata={})
    target = tmp_path / "archive" / "cam" / "b.mp4"
    assert os.stat(src).st_nlink == 2
    assert os.stat(target).st_ino == os.stat(src).st_ino
    assert target.read_bytes() == data
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".part")]


def test_cross_filesystem_put_copies(tmp_path: Path, dest: DiskDestination, monkeypatch) -> None:
    data = os.urandom(2 * 1024 * 1024 + 5)  # several 1 MiB chunks
    src, sha = make_file(tmp_path / "staging" / "c.mp4", data)

    def no_link(*a, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    dest.put(src, "cam/c.mp4", sha256=sha, metadata={})
    target = tmp_path / "archive" / "cam" / "c.mp4"
    assert os.stat(src).st_nlink == 1
    assert target.read_bytes() == data
    assert dest.hash("cam/c.mp4") == sha


def test_copy_refuses_a_source_that_does_not_match_its_hash(tmp_path, dest, monkeypatch) -> None:
    src, _ = make_file(tmp_path / "staging" / "d.mp4", b"abc")
    monkeypatch.setattr(os, "link", lambda *a, **kw: (_ for _ in ()).throw(OSError(errno.EXDEV, "x")))
    with pytest.raises(DestinationError, match="does not match"):
        dest.put(src, "cam/d.mp4", sha256="0" * 64, metadata={})
    assert dest.stat("cam/d.mp4") is None
    assert not list((tmp_path / "archive" / "cam").iterdir())


def test_put_is_idempotent(tmp_path: Path, dest: DiskDestination, monkeypatch) -> None:
    src, sha = make_file(tmp_path / "staging" / "e.mp4", b"same bytes")
    dest.put(src, "cam/e.mp4", sha256=sha, metadata={})
    target = tmp_path / "archive" / "cam" / "e.mp4"
    inode = os.stat(target).st_ino

    calls: list[object] = []
    monkeypatch.setattr(os, "replace", lambda *a: calls.append(a))
    info = dest.put(src, "cam/e.mp4", sha256=sha, metadata={})
    assert calls == [] and info.size == 10
    assert os.stat(target).st_ino == inode
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


def test_put_replaces_a_different_file(tmp_path: Path, dest: DiskDestination) -> None:
    target = tmp_path / "archive" / "cam" / "f.mp4"
    make_file(target, b"old and wrong")
    src, sha = make_file(tmp_path / "staging" / "f.mp4", b"new")
    dest.put(src, "cam/f.mp4", sha256=sha, metadata={})
    assert target.read_bytes() == b"new"


@pytest.mark.parametrize(
    "key",
    ["../escape.mp4", "a/../../escape.mp4", "/etc/passwd", "a//b.mp4", "", "a/./b", "a\\..\\b", "link/x.mp4"],
    ids=["dotdot", "nested-dotdot", "absolute", "empty-segment", "empty", "dot", "backslash", "symlink"],
)
def test_escapes_are_refused(tmp_path: Path, dest: DiskDestination, key: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "link").symlink_to(outside, target_is_directory=True)
    src, sha = make_file(tmp_path / "staging" / "g.mp4", b"x")
    with pytest.raises(DestinationError):
        dest.put(src, key, sha256=sha, metadata={})
    with pytest.raises(DestinationError):
        dest.stat(key)
    with pytest.raises(DestinationError):
        dest.delete(key)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape.mp4").exists()


def test_a_file_symlink_leading_out_of_the_root_is_refused(tmp_path: Path, dest: DiskDestination) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not yours")
    (tmp_path / "archive" / "cam").mkdir(parents=True)
    dest.stat("cam/other.mp4")  # the folder is now resolved and remembered
    (tmp_path / "archive" / "cam" / "a.mp4").symlink_to(secret)
    with pytest.raises(DestinationError, match="leaves the root"):
        dest.stat("cam/a.mp4")
    with pytest.raises(DestinationError, match="leaves the root"):
        dest.hash("cam/a.mp4")
    assert secret.read_bytes() == b"not yours"


def test_symlink_inside_root_is_allowed(tmp_path: Path, dest: DiskDestination) -> None:
    real = tmp_path / "archive" / "real"
    real.mkdir(parents=True)
    (tmp_path / "archive" / "alias").symlink_to(real, target_is_directory=True)
    src, sha = make_file(tmp_path / "staging" / "h.mp4", b"x")
    dest.put(src, "alias/h.mp4", sha256=sha, metadata={})
    assert (real / "h.mp4").read_bytes() == b"x"


def test_enospc_becomes_destination_error_and_leaves_no_temp(tmp_path, dest, monkeypatch) -> None:
    src, sha = make_file(tmp_path / "staging" / "i.mp4", os.urandom(3 * 1024 * 1024))
    monkeypatch.setattr(os, "link", lambda *a, **kw: (_ for _ in ()).throw(OSError(errno.EXDEV, "x")))
    real_write = os.write
    written = []

    def full_disk(fd: int, data) -> int:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(DestinationError) as info:
        dest.put(src, "cam/i.mp4", sha256=sha, metadata={})
    monkeypatch.undo()
    message = str(info.value)
    assert message == "disk destination 'disk': no space left on device writing cam/i.mp4"
    assert "\n" not in message
    assert list((tmp_path / "archive" / "cam").iterdir()) == []


def test_eacces_is_one_line(tmp_path: Path, dest: DiskDestination, monkeypatch) -> None:
    src, sha = make_file(tmp_path / "staging" / "j.mp4", b"x")

    def denied(*a, **kw):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "link", denied)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(
        DestinationError, match=r"^disk destination 'disk': permission denied writing cam/j\.mp4$"
    ):
        dest.put(src, "cam/j.mp4", sha256=sha, metadata={})


def test_list_skips_temp_hidden_and_excluded(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    dest = DiskDestination(root, exclude=["staging"])
    make_file(root / "cam" / "a.mp4", b"a")
    make_file(root / "cam" / ".a.mp4.1234.part", b"partial")
    make_file(root / ".hidden" / "x.mp4", b"x")
    make_file(root / "staging" / "y.mp4", b"y")
    (root / "cam" / "link.mp4").symlink_to(root / "cam" / "a.mp4")
    assert [(o.key, o.size) for o in dest.list()] == [("cam/a.mp4", 1)]
    assert is_temporary_key("cam/.a.mp4.1234.part") and not is_temporary_key("cam/a.mp4")


def test_unique_names() -> None:
    assert unique_names(["disk", "disk", "s3", "disk"]) == ["disk", "disk-2", "s3", "disk-3"]
    assert unique_names(["disk", "disk", "disk-2"]) == ["disk", "disk-3", "disk-2"]


def test_build_destinations(tmp_path: Path) -> None:
    default = build_destinations(Settings(data_dir=tmp_path))
    assert len(default) == 1 and isinstance(default[0], DiskDestination)
    assert default[0].name == "disk" and default[0].root == tmp_path / "archive"

    settings = Settings(
        data_dir=tmp_path,
        sync={"staging_dir": tmp_path / "a" / ".staging"},
        destinations=[
            DiskDestinationSettings(path=tmp_path / "a"),
            DiskDestinationSettings(path=tmp_path / "b"),
            S3DestinationSettings(bucket="bkt", name="offsite"),
            S3DestinationSettings(bucket="bkt2", region="us-east-1"),
        ],
    )
    built = build_destinations(settings)
    assert [d.name for d in built] == ["disk", "disk-2", "offsite", "s3"]
    assert built[0].exclude == (".staging/",) and built[1].exclude == ()


@pytest.mark.parametrize("name", ["disk", "s3", "minio"])
def test_config_examples_load(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(CONFIG_DIR / f"archiver.{name}.example.toml")
    assert settings.destination_list()


def _items(tmp_path: Path, folder: str, names: list[str]) -> list[PutItem]:
    out = []
    for name in names:
        src = tmp_path / f"src-{name}"
        src.write_bytes(name.encode() * 100)
        out.append(PutItem(src, f"{folder}/{name}", sha256_file(src), {}))
    return out


def test_put_many_makes_the_clips_folder_durable_once_for_all_its_files(
    tmp_path: Path, dest: DiskDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, sha = make_file(tmp_path / "first", b"x")
    dest.put(src, "Home/Cam/day/first.mp4", sha256=sha, metadata={})  # the folder exists already
    synced: list[Path] = []
    real = disk_module._fsync_dir
    monkeypatch.setattr(disk_module, "_fsync_dir", lambda p: (synced.append(Path(p)), real(p)))
    items = _items(tmp_path, "Home/Cam/day", ["a.mp4", "a.jpg", "a.json"])
    done: list[str] = []
    put_many(dest, items, lambda item, info: done.append(info.key))
    assert done == [i.key for i in items]
    assert synced == [dest.root / "Home/Cam/day"]  # one fsync of the folder, not one per file
    assert all(dest.hash(i.key) == i.sha256 for i in items)


def test_put_many_reports_what_it_stored_before_a_failure(
    tmp_path: Path, dest: DiskDestination, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _items(tmp_path, "Home/Cam/day", ["b.mp4", "b.jpg"])
    items[1].src.unlink()  # the second source vanished
    synced: list[Path] = []
    real = disk_module._fsync_dir
    monkeypatch.setattr(disk_module, "_fsync_dir", lambda p: (synced.append(Path(p)), real(p)))
    done: list[str] = []
    with pytest.raises(DestinationError):
        put_many(dest, items, lambda item, info: done.append(info.key))
    assert done == ["Home/Cam/day/b.mp4"]  # durable (its folder fsynced) before it was reported
    assert dest.root / "Home/Cam/day" in synced
    assert dest.stat("Home/Cam/day/b.jpg") is None
