"""The commands' tables: aligned ASCII columns."""

from __future__ import annotations

from proxy.commands.tables import table


def test_columns_align_left_or_right_with_rules_where_asked() -> None:
    rows = [("name", "size"), ("a", "1 kB"), ("longer name", "12.5 MB"), ("total", "12.5 MB")]
    assert table(rows, right={1}, rule_after={0, 2}) == [
        "name            size",
        "-----------  -------",
        "a               1 kB",
        "longer name  12.5 MB",
        "-----------  -------",
        "total        12.5 MB",
    ]


def test_trailing_blanks_go_and_what_is_not_ascii_is_replaced() -> None:
    assert table([("a", "b"), ("Fehler: Verbindung verweigert \u2013 zu", "")]) == [
        "a                                   b",
        "Fehler: Verbindung verweigert ? zu",
    ]
