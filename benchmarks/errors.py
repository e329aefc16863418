"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (a name, a parameter, a suite file): one line saying what is wrong and
    what would be right. Anything else that escapes is a bug and keeps its traceback."""


class BackendUnavailable(RuntimeError):
    """A model's optional backend cannot run on this machine (a missing package, Julia for
    PySR). Raised by a factory or fit; the runner records the cell as `skipped` with the
    message as its reason, and the suite goes on."""
