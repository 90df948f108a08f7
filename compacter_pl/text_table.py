"""Aligned plain-text tables, as the commands print them."""

from collections.abc import Sequence


def text_table(rows: Sequence[Sequence[str]], align: str | None = None) -> list[str]:
    """One line per row: every column padded to its widest cell, columns two spaces apart, trailing spaces
    dropped. `align` has a character per column, `<` (left) or `>` (right); by default the first column reads
    from the left and the others, numbers, from the right. A row shorter than the first (a message in place of
    numbers) ends with a cell that spans the remaining columns, written as given; its cells widen no column."""
    columns = len(rows[0])
    widths = [max(len(row[i]) for row in rows if len(row) == columns) for i in range(columns)]
    sides = list(zip(widths, align or "<" + ">" * (columns - 1), strict=True))

    def padded(cells: Sequence[str]) -> list[str]:  # a short row's cells: the first columns
        return [cell.ljust(w) if side == "<" else cell.rjust(w) for cell, (w, side) in zip(cells, sides, strict=False)]

    return [
        "  ".join(padded(row)).rstrip() if len(row) == columns else "  ".join([*padded(row[:-1]), row[-1]])
        for row in rows
    ]
