"""Tables for a terminal: plain ASCII columns (a Windows console shows them as they are)."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def table(
    rows: Sequence[Sequence[str]], right: Collection[int] = (), rule_after: Collection[int] = ()
) -> list[str]:
    """The rows as lines of aligned columns, two spaces apart: left-aligned but for the
    columns numbered in `right`, with a line of dashes after each row numbered in
    `rule_after`. Cells not in ASCII (an error message in another language) are replaced."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("-" * width for width in widths)
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip().encode("ascii", "replace").decode("ascii"))
        if number in rule_after:
            lines.append(rule)
    return lines
