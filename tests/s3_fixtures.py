"""A real S3 over HTTP for tests: moto's server on a free loopback port, one fresh bucket per test.

Use with ``from s3_fixtures import moto_server, s3_bucket  # noqa: F401``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import boto3
import pytest
from helpers import free_port

from archiver.config import S3DestinationSettings
from archiver.destinations.s3 import S3Destination

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start moto's S3 over real HTTP on 127.0.0.1:<free port>; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()  # port 0: the OS picked a free one
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A fresh, empty bucket on the moto server: ``(endpoint_url, bucket)``; dummy AWS env vars set."""
    for key, value in DUMMY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    return moto_server, bucket


def unreachable_s3(name: str = "s3") -> S3Destination:
    """An S3 destination whose endpoint is a closed loopback port, failing fast (one try, 1 s)."""
    return S3Destination(
        S3DestinationSettings(
            bucket="bkt", endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1"
        ),
        name,
        connect_timeout=1,
        max_attempts=1,
    )
