"""The task registry: every task of the paper by name (GLUE in `glue`, SuperGLUE in `superglue`)."""

from typing import Literal

from compacter_pl.errors import UserError
from compacter_pl.tasks import glue, superglue
from compacter_pl.tasks.base import Example, HubDataset, Scored, Task

TASKS: dict[str, Task] = {task.name: task for task in glue.TASKS + superglue.TASKS}
# The registered names as a type: `--data.task` offers them as choices in `--help` and refuses any other.
TaskName = Literal[tuple(TASKS)]  # noqa: the tuple is unpacked into the Literal's values


def get_task(name: str) -> Task:
    """The task called `name`, or a UserError that lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


__all__ = ["TASKS", "Example", "HubDataset", "Scored", "Task", "TaskName", "get_task"]
