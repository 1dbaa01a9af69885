"""A real S3-compatible server for the tests: moto's `ThreadedMotoServer` on 127.0.0.1 (or another local address).

Dummy credentials and a disabled instance-metadata lookup keep boto3 from ever contacting an AWS host.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kubeinfer.engines.llamacpp_server import free_port
from kubeinfer.settings import StorageSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self) -> S3Client:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def new_bucket(self) -> str:
        name = f"kubeinfer-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def names(self, bucket: str) -> list[str]:
        return [o["Key"] for o in self.client().list_objects_v2(Bucket=bucket).get("Contents", [])]

    def pending_uploads(self, bucket: str) -> list[str]:
        return [u["Key"] for u in self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    def settings(self, bucket: str, **fields: object) -> StorageSettings:
        return StorageSettings.model_validate(
            {"backend": "s3", "endpoint_url": self.endpoint_url, "bucket": bucket, "region": "us-east-1"} | fields
        )


@contextmanager
def s3_server(host: str = "127.0.0.1") -> Iterator[S3Server]:
    """The server on `host` (a local address) and the dummy AWS environment, both gone afterwards."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in DUMMY_AWS_ENV.items():
            env.setenv(name, value)
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        port = free_port(host)
        server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        server.start()
        try:
            yield S3Server(f"http://{host}:{port}")
        finally:
            server.stop()
