"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (a name, a parameter, a suite file): one line saying what is wrong and
    what would be right. Anything else that escapes is a bug and keeps its traceback."""
