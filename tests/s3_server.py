"""A real S3 server on loopback (moto's), for run directories given as `s3://` URIs.

    def test_something(s3_store):
        uri = s3_store.uri("run")      # s3://synth-test/ID/run?endpoint_override=127.0.0.1:PORT&scheme=http
        s3_store.objects("run")        # {relative key: bytes} of what is committed there
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

BUCKET = "synth-test"
KEYS = {"AWS_ACCESS_KEY_ID": "synth-test-key", "AWS_SECRET_ACCESS_KEY": "synth-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1"}
"""What pyarrow's S3 client reads from the environment, as on AWS (moto accepts any keys)."""


@dataclass
class S3Store:
    endpoint: str
    prefix: str

    @property
    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(endpoint_override=self.endpoint, scheme="http", access_key=KEYS["AWS_ACCESS_KEY_ID"],
                                 secret_key=KEYS["AWS_SECRET_ACCESS_KEY"], region="us-east-1")

    def key(self, name: str) -> str:
        return f"{BUCKET}/{self.prefix}/{name}"

    def uri(self, name: str) -> str:
        return f"s3://{self.key(name)}?endpoint_override={self.endpoint}&scheme=http&region=us-east-1"

    def objects(self, name: str) -> dict[str, bytes]:
        """Every object under `name`, by key relative to it."""
        root = self.key(name)
        found = {}
        for info in self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File:
                with self.fs.open_input_stream(info.path) as src:
                    found[info.path[len(root) + 1:]] = src.read()
        return found

    def fresh(self) -> S3Store:
        """Another prefix of the same bucket, for a test of its own."""
        return S3Store(self.endpoint, uuid.uuid4().hex[:12])


def create_bucket(endpoint: str) -> None:
    pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key=KEYS["AWS_ACCESS_KEY_ID"],
                      secret_key=KEYS["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
                      allow_bucket_creation=True).create_dir(BUCKET)
