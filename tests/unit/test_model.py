"""Project names: normalization and the strings that are not names at all."""

from __future__ import annotations

import pytest

from proxy.core.model import (
    FileLink,
    InvalidName,
    NormalizedName,
    ProjectPage,
    normalize,
)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("numpy", "numpy"),
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("typing_extensions", "typing-extensions"),
        ("Foo__Bar--Baz..Qux", "foo-bar-baz-qux"),
        ("a", "a"),
        ("x1", "x1"),
    ],
)
def test_normalize(raw: str, normalized: str) -> None:
    assert normalize(raw) == normalized


@pytest.mark.parametrize(
    "raw", ["", "..", ".", "-a", "a-", "a/b", "a%2Fb", "a b", "ä", "a\x00", "x" * 201, "_a"]
)
def test_not_a_name(raw: str) -> None:
    with pytest.raises(InvalidName):
        normalize(raw)


def test_page_round_trips_through_its_stored_form() -> None:
    page = ProjectPage(
        NormalizedName("x"),
        (
            FileLink("x-1.tar.gz", "https://u.test/x-1.tar.gz", sha256="a" * 64, yanked="r"),
            FileLink("x-2.tar.gz", "https://u.test/x-2.tar.gz", size=3, metadata_sha256=""),
        ),
    )
    again = ProjectPage.from_dict(page.to_dict())
    assert again == page
    assert again.file("x-2.tar.gz") == page.files[1]
    assert again.file("nope") is None
