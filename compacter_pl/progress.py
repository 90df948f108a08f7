"""The progress bar `fit` ... `predict` show: Lightning's own, with the run's version (`v_num`, the N of
lightning_logs/version_N) as the integer it is (Lightning's rich bar formats every value as a float: `v_num: 0.000`)."""

from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE


class RichBar(RichProgressBar):
    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        if isinstance(items.get("v_num"), int):
            items["v_num"] = str(items["v_num"])  # strings are shown as they are
        return items


def default_progress_bar() -> RichProgressBar | TQDMProgressBar:
    """The bar Lightning would pick (rich if installed, else tqdm, whose v_num is already an integer)."""
    return RichBar() if _RICH_AVAILABLE else TQDMProgressBar()
