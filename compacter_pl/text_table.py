"""Aligned plain-text tables, as the commands print them."""

from collections.abc import Sequence


def text_table(rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    """One line per row: every column padded to its widest cell, columns two spaces apart, trailing spaces
    dropped. `align` has a character per column, `<` (left) or `>` (right); by default the first column reads
    from the left and the others, numbers, from the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    align = align or "<" + ">" * (len(widths) - 1)
    return [
        "  ".join(
            cell.ljust(width) if side == "<" else cell.rjust(width)
            for cell, width, side in zip(row, widths, align, strict=True)
        ).rstrip()
        for row in rows
    ]
