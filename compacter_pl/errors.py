"""Errors caused by what the user asked for; the CLI prints them as one line and exits non-zero."""

import difflib
import errno
import re


def first_line(error: BaseException, default: str | None = None) -> str:
    """The first line of an error's message, for a one-line report; for an empty message `default` (None: the
    error's type name)."""
    return (str(error).splitlines() or [type(error).__name__ if default is None else default])[0]


class UserError(Exception):
    """Bad input: the message says what was wrong and how to fix it, in one line."""


class Interrupted(UserError):
    """A run stopped by SIGTERM: one line saying where to resume from; the exit code is a shell's for a process
    that SIGTERM ended (128 + 15), so a job script sees that it did not finish."""

    exit_code = 143


def did_you_mean(word, known, negation: bool = False) -> str:
    """`; did you mean 'KEY'?` for the known key closest to a misspelt `word` (`--no-flag`: `--flag false`)."""
    word = str(word).lstrip("-")
    negated = re.sub(r"^no[-_]", "", word)
    if negation and negated != word and negated in known:  # --no-flag of the old argparse commands
        return f"; did you mean '--{negated} false'?"
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def file_error(error: OSError, option: str | None, writing: bool | None) -> UserError:
    """An OSError of a file the user named with `option` (None: a file of no option), as one line that says whether
    it was read or written (None: unknown) and which option to change; a full disk says so."""
    name = error.filename or "a file"
    change = f"; choose another {option}" if option else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"the disk is full: cannot write {name}; free space there{change}")
    if error.errno == errno.ENOENT and not writing:
        return UserError(f"{name} does not exist{f'; check {option}' if option else ''}")
    if error.errno == errno.EISDIR and not writing:
        return UserError(f"{name} is a directory, not a file{f'; pass {option} a file' if option else ''}")
    verb = {True: "write", False: "read", None: "use"}[writing]
    return UserError(f"cannot {verb} {name}: {error.strerror}{change}")
