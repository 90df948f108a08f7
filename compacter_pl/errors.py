"""Errors caused by what the user asked for; the CLI prints them as one line and exits non-zero."""

import difflib
import re


class UserError(Exception):
    """Bad input: the message says what was wrong and how to fix it, in one line."""


def did_you_mean(word, known, negation: bool = False) -> str:
    """`; did you mean 'KEY'?` for the known key closest to a misspelt `word` (`--no-flag`: `--flag false`)."""
    word = str(word).lstrip("-")
    negated = re.sub(r"^no[-_]", "", word)
    if negation and negated != word and negated in known:  # --no-flag of the old argparse commands
        return f"; did you mean '--{negated} false'?"
    close = difflib.get_close_matches(word, [str(k) for k in known], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
