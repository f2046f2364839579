"""One exception type for every user-facing failure.

The CLI prints its message as a single line and exits non-zero; anything else
reaching the top level is a bug and keeps its traceback.
"""


class AutoshieldError(Exception):
    """A problem with the user's input, data or environment, explained in one line."""
