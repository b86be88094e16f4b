"""The bucket's names and its credentials file, without a bucket (the tests against a real
one are in tests/e2e/test_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.core.config import Config, ObjectStore
from proxy.server.bucket import Bucket


def test_files_and_lessons_live_under_names_made_of_hashes() -> None:
    sha = "ab" * 32
    assert Bucket.key(sha) == f"files/ab/ab/{sha}"
    key = Bucket.lesson_key("sha256", "https://t.test/whl/x-1.0-py3-none-any.whl")
    assert key.startswith("lessons/sha256/") and len(key.rsplit("/", 1)[1]) == 64


def test_credentials_come_from_the_profile_of_an_aws_credentials_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id = AKIA1\naws_secret_access_key = s1\n"
                    "[lab]\naws_access_key_id = AKIA2\naws_secret_access_key = s2\n")  # fmt: skip
    store = ObjectStore("pypi-cache", "lab", "http://127.0.0.1:8333", "us-east-1", path)
    config = Config(upstreams=(), indexes=())
    bucket = Bucket(store, config)
    assert "X-Amz-Credential=AKIA1" in bucket.signed_url("ab" * 32)
    monkeypatch.setenv("AWS_PROFILE", "lab")
    assert "X-Amz-Credential=AKIA2" in Bucket(store, config).signed_url("ab" * 32)
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(ValueError, match=r"cache.store.credentials: .* has no \[nope\] profile"):
        Bucket(store, config)
