"""compacter-pl: Compacter and the baselines of its paper on T5, GLUE and SuperGLUE, with PyTorch Lightning.

The flow: `cli.py` (LightningCLI) -> `data.TextToTextDataModule` (a task from `tasks`) ->
`training.TextToTextModule` (hosts T5) -> a method strategy from `methods` -> the layers in `layers`.
"""

__version__ = "0.1.0"
