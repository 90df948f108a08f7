"""The task registry: every task of the paper by name (GLUE in `glue`, SuperGLUE in `superglue`)."""

from typing import TYPE_CHECKING, Literal

from compacter_pl.errors import UserError
from compacter_pl.tasks import glue, superglue
from compacter_pl.tasks.base import Example, HubDataset, Scored, Task

TASKS: dict[str, Task] = {task.name: task for task in glue.TASKS + superglue.TASKS}
# The registered names as a type: `--data.task` offers them as choices in `--help` and refuses any other.
if TYPE_CHECKING:  # a Literal built at run time: a plain string to a type checker
    TaskName = str
else:
    TaskName = Literal[tuple(TASKS)]  # the tuple is unpacked into the Literal's values


def register_task(task: Task) -> Task:
    """Add a task of your own (a `Task` of a pinned `HubDataset`) by its name, for the Python API
    (`TextToTextDataModule(task=...)`, `get_task`). The command line offers the project's own tasks, the tuples in
    `glue` and `superglue` (CONTRIBUTING.md, "Add a task"), as `--data.task` choices."""
    if task.name in TASKS and TASKS[task.name] is not task:
        raise ValueError(f"a task named {task.name!r} is registered already")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task called `name`, or a UserError that lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


__all__ = ["TASKS", "Example", "HubDataset", "Scored", "Task", "TaskName", "get_task", "register_task"]
