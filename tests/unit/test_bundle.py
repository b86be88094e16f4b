"""A bundle's manifest: what it may list, and nothing else (no way out of the bundle)."""

from __future__ import annotations

import json

import pytest

from proxy.core.bundle import BadBundle, Member, file_path, manifest, page_path, parse_manifest

SHA = "ab" * 32


def test_a_manifest_round_trips() -> None:
    members = [Member(file_path(SHA), SHA, 10), Member(page_path("pytorch-cu121", "torch"), SHA, 3)]
    assert parse_manifest(manifest(members, "2026-12-01T00:00:00Z")) == members
    assert members[1].page() == ("pytorch-cu121", "torch") and not members[1].is_file


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "../etc/passwd", "sha256": SHA, "size": 1}, "is not a member a bundle may have"),
        ({"path": "files/../../x", "sha256": SHA, "size": 1}, "is not a member"),
        ({"path": "pages/pypi/Not_Normal.json", "sha256": SHA, "size": 1}, "is not a member"),
        ({"path": f"files/{'cd' * 32}", "sha256": SHA, "size": 1}, "named for another sha256"),
        ({"path": file_path(SHA), "sha256": "xyz", "size": 1}, "not a sha256"),
        ({"path": file_path(SHA), "sha256": SHA, "size": -1}, "not a size"),
        ({"path": file_path(SHA), "sha256": SHA}, "not a bundle's manifest"),
    ],
)
def test_what_a_manifest_may_not_list(entry: dict[str, object], message: str) -> None:
    body = json.dumps({"format": 1, "created": "", "members": [entry]}).encode()
    with pytest.raises(BadBundle, match=message):
        parse_manifest(body)


def test_another_format_or_no_manifest_at_all() -> None:
    with pytest.raises(BadBundle, match="format 2, expected 1"):
        parse_manifest(b'{"format": 2, "members": []}')
    with pytest.raises(BadBundle, match="not a bundle's manifest"):
        parse_manifest(b"<html>")
