"""The task registry: every task of the paper by name (GLUE in `glue`, SuperGLUE in `superglue`)."""

from compacter_pl.errors import UserError
from compacter_pl.tasks import glue, superglue
from compacter_pl.tasks.base import Example, Scored, Task

TASKS: dict[str, Task] = {task.name: task for task in glue.TASKS + superglue.TASKS}


def get_task(name: str) -> Task:
    """The task called `name`, or a UserError that lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


__all__ = ["TASKS", "Example", "Scored", "Task", "get_task"]
