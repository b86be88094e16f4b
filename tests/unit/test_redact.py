"""A private mirror's credentials, masked wherever a URL leaves the process."""

from __future__ import annotations

from proxy.core.redact import hide_passwords


def test_hide_passwords_masks_passwords_and_tokens_only() -> None:
    assert hide_passwords("https://lab:pa:ss@mirror.test/simple/: HTTP 503") == (
        "https://lab:***@mirror.test/simple/: HTTP 503"
    )
    assert hide_passwords("at https://tok3n@x.test/s/") == "at https://***@x.test/s/"
    plain = "http://mirror.test:8080/a@b/ and user@example.test"
    assert hide_passwords(plain) == plain
