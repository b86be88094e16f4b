"""The files each kind of lock file pins, by hash, and those no upstream lists."""

from __future__ import annotations

import pytest

from proxy.commands.prefetch_plan import locked_refs
from proxy.core.lock_files import BadLock, LockedFile, locked_files
from proxy.core.model import NormalizedName

A, B = "aa" * 32, "bb" * 32
WHEEL = "tinyapp-1.0-py3-none-any.whl"
SDIST = "tinyapp-1.0.tar.gz"
EXPECTED = [LockedFile(NormalizedName("tinyapp"), "1.0", SDIST, A),
            LockedFile(NormalizedName("tinyapp"), "1.0", WHEEL, B)]  # fmt: skip
LOCKS = {
    "uv.lock": f"""version = 1
[[package]]
name = "app"
version = "0.1"
source = {{ virtual = "." }}
[[package]]
name = "TinyApp"
version = "1.0"
sdist = {{ url = "http://p.test/files/tinyapp/{SDIST}", hash = "sha256:{A}", size = 1 }}
wheels = [{{ url = "http://p.test/files/tinyapp/{WHEEL}", hash = "sha256:{B}", size = 1 }}]
""",
    "pylock.toml": f"""lock-version = "1.0"
[[packages]]
name = "tinyapp"
version = "1.0"
sdist = {{ name = "{SDIST}", url = "http://p.test/x", hashes = {{ sha256 = "{A}" }} }}
wheels = [{{ url = "http://p.test/files/tinyapp/{WHEEL}", hashes = {{ sha256 = "{B}" }} }}]
""",
    "poetry.lock": f"""[[package]]
name = "tinyapp"
version = "1.0"
files = [{{ file = "{SDIST}", hash = "sha256:{A}" }}, {{ file = "{WHEEL}", hash = "sha256:{B}" }}]
""",
    "pdm.lock": f"""[[package]]
name = "tinyapp"
version = "1.0"
files = [
    {{ file = "{SDIST}", hash = "sha256:{A}" }},
    {{ url = "http://p.test/{WHEEL}", hash = "sha256:{B}" }},
]
""",
}


@pytest.mark.parametrize("name", list(LOCKS))
def test_each_kind_of_lock_file(name: str) -> None:
    assert locked_files(name, LOCKS[name]) == EXPECTED


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("Pipfile.lock", "{}", "not a lock file name this knows"),
        ("uv.lock", "not = [toml", "uv.lock: not TOML"),
        ("poetry.lock", "x = 1", "poetry.lock: no packages in it"),
        ("pdm.lock", '[[package]]\nname = "x"\nfiles = [{file = "x-1.tar.gz", hash = "md5:00"}]',
         "pdm.lock: package 1: not as expected"),
    ],
)  # fmt: skip
def test_what_is_not_a_lock_file(name: str, text: str, message: str) -> None:
    with pytest.raises(BadLock, match=message):
        locked_files(name, text)


def test_a_locked_file_no_upstream_lists_fails_by_name() -> None:
    page = {"files": [{"filename": WHEEL, "url": f"../../files/tinyapp/{WHEEL}",
                       "hashes": {"sha256": B}}]}  # fmt: skip
    refs, missing = locked_refs(EXPECTED, {"tinyapp": ("http://proxy.test/simple/tinyapp/", page)})
    assert [r.url for r in refs] == [f"http://proxy.test/files/tinyapp/{WHEEL}"]
    assert missing == [f"tinyapp 1.0: {SDIST} (sha256 {A}) is listed by no upstream"]
