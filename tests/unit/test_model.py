"""Project names: normalization and the strings that are not names at all; filenames of
variant wheels and variants files (PEP 825)."""

from __future__ import annotations

import pytest
from packaging.version import Version

from proxy.core.model import (
    FileLink,
    InvalidName,
    NormalizedName,
    ProjectPage,
    is_variants_file,
    name_and_version,
    normalize,
    parse_wheel,
    variant_label,
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


@pytest.mark.parametrize(
    ("filename", "label", "version"),
    [
        ("torch-2.9.0-cp312-cp312-manylinux_2_28_x86_64-cu128.whl", "cu128", "2.9.0"),
        ("numpy-2.3.2-cp313-cp313t-musllinux_1_2_x86_64-x86_64_v3.whl", "x86_64_v3", "2.3.2"),
        ("torch-2.9.0-1-cp312-cp312-linux_x86_64-null.whl", "null", "2.9.0"),  # and a build tag
        ("torch-2.9.0-1-cp312-cp312-linux_x86_64.whl", None, "2.9.0"),  # a build tag alone
        ("torch-2.9.0+cu128-cp312-cp312-win_amd64.whl", None, "2.9.0+cu128"),
    ],
)
def test_variant_wheels_are_parsed_by_the_core(
    filename: str, label: str | None, version: str
) -> None:
    assert variant_label(filename) == label
    assert name_and_version(filename) == (filename.split("-")[0], Version(version))
    assert parse_wheel(filename)[1] == Version(version)


def test_what_is_not_a_variant_wheel_or_a_variants_file() -> None:
    assert variant_label("torch-2.9.0-cp312-cp312-linux_x86_64-CU128.whl") is None  # lowercase
    assert variant_label("torch-2.9.0-variants.json") is None
    assert name_and_version("torch-2.9.0-cp312-cp312-linux_x86_64-CU128.whl") is None
    assert is_variants_file("torch-2.9.0-variants.json")
    assert is_variants_file("flash_attn-2.8.3.post1-variants.json")
    assert not is_variants_file("torch-variants.json")
    assert not is_variants_file("torch-2.9.0-variants.json.metadata")
    link = FileLink("torch-2.9.0-variants.json", "https://t.test/torch-2.9.0-variants.json")
    assert link.mutable and not link.offers_metadata
    assert not FileLink("torch-2.9.0-cp312-cp312-linux_x86_64-cu128.whl", "u").mutable
