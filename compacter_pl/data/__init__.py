"""Data: raw records (`sources`), the paper's splits (`splits`), padding (`collate`), the data module."""

from compacter_pl.data.datamodule import TextToTextDataModule

__all__ = ["TextToTextDataModule"]
