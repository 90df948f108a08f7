"""The GLUE tasks of the paper (WNLI left out), from the Hub dataset `nyu-mll/glue`."""

from compacter_pl.tasks.base import Task

GLUE = "nyu-mll/glue"

RTE = Task("rte", GLUE, "rte", ("sentence1", "sentence2"), ("0", "1"), ("accuracy",), small=True,
           label_names=("entailment", "not_entailment"))

TASKS = (RTE,)
