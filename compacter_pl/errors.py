"""Errors caused by what the user asked for; the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input: the message says what was wrong and how to fix it, in one line."""
