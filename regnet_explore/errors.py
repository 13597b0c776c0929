"""The one exception type for errors a user can cause (bad files, names, parameters)."""


class RegNetExploreError(ValueError):
    """A user-facing error: the message names the input and, where possible, the fix.

    The CLI prints it as one line and exits with code 2.
    """
