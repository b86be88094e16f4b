"""The union of several upstreams' pages: every file once, the earlier upstream winning."""

from __future__ import annotations

from proxy.core.model import FileLink, NormalizedName, ProjectPage, ProjectStatus
from proxy.core.routing import union

NAME = NormalizedName("demo")


def test_union_keeps_order_and_the_first_of_a_filename() -> None:
    first = ProjectPage(NAME, (FileLink("demo-1.0.tar.gz", "https://a.test/1", sha256="a" * 64),))
    second = ProjectPage(
        NAME,
        (
            FileLink("demo-1.0.tar.gz", "https://b.test/1", sha256="b" * 64),  # other bytes
            FileLink("demo-2.0.tar.gz", "https://b.test/2"),
        ),
    )
    merged = union([first, second])
    assert merged == ProjectPage(NAME, (first.files[0], second.files[1]))


def test_what_is_said_of_the_project_is_the_first_upstreams() -> None:
    first = ProjectPage(NAME, (), status=ProjectStatus("archived"), tracks=("https://a.test/",))
    second = ProjectPage(
        NAME,
        (FileLink("demo-2.0.tar.gz", "https://b.test/2"),),
        status=ProjectStatus("quarantined"),
        alternate_locations=("https://b/",),
    )
    merged = union([first, second])
    assert (merged.status, merged.tracks, merged.alternate_locations) == (
        ProjectStatus("archived"),
        ("https://a.test/",),
        (),
    )
