"""The paper's Figure 4 from the low-resource runs (matplotlib, no pyplot)."""

import math
from pathlib import Path

from compacter_pl.tools.sweep.report.aggregate import LowResource
from compacter_pl.tools.sweep.report.records import average_label, display


def figure(table: LowResource, path: Path) -> None:
    """A panel per task and per benchmark average; a line per method with a band of one standard deviation.
    An average over only some of the benchmark's tasks (a size some task lacks) has a hollow marker."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    from matplotlib.lines import Line2D

    panels = [
        (
            display(t),
            {
                (m, n): (table.cells[(m, n, t)], True)
                for m in table.methods
                for n in table.sizes
                if (m, n, t) in table.cells
            },
        )
        for t in table.tasks
    ]
    for benchmark, members in table.benchmarks.items():
        stats = {
            (m, n): (table.averages[(m, n, benchmark)][0], table.averages[(m, n, benchmark)][1] == len(members))
            for m in table.methods
            for n in table.sizes
            if (m, n, benchmark) in table.averages
        }
        partial = not all(complete for _, complete in stats.values())
        panels.append((average_label(benchmark, members) + (" (hollow: some tasks)" if partial else ""), stats))
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.3 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    colors = {method: f"C{i}" for i, method in enumerate(table.methods)}
    for ax, (title, stats) in zip(axes, panels, strict=False):  # a grid may have more axes than panels
        for method, color in colors.items():
            points = sorted((n, s, complete) for (m, n), (s, complete) in stats.items() if m == method)
            if not points:
                continue
            x = [n for n, _, _ in points]
            mean = [s.mean for _, s, _ in points]
            std = [s.std or 0.0 for _, s, _ in points]
            ax.plot(x, mean, color=color)
            ax.fill_between(
                x,
                [m - d for m, d in zip(mean, std, strict=True)],
                [m + d for m, d in zip(mean, std, strict=True)],
                color=color,
                alpha=0.2,
                linewidth=0,
            )
            for n, s, complete in points:
                ax.plot([n], [s.mean], marker="o", color=color, markerfacecolor=color if complete else "white")
        ax.set_xscale("log")
        ax.set_xticks(table.sizes, [str(n) for n in table.sizes])
        ax.minorticks_off()
        ax.set_title(title)
        ax.set_xlabel("training examples")
        ax.set_ylabel(f"{table.metric} x 100")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=color, marker="o", label=method) for method, color in colors.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=max(1, len(handles)))
    fig.savefig(path, dpi=120)
