"""The one exception type for errors a user can cause (bad files, names, parameters), and the one way the command
line shows a warning."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator


class RegNetExploreError(ValueError):
    """A user-facing error: the message names the input and, where possible, the fix.

    The CLI prints it as one line and exits with code 2.
    """


@contextlib.contextmanager
def one_line_warnings(command: str, category: type[Warning] = UserWarning) -> Iterator[None]:
    """Inside the block, warnings of ``category`` are shown as one line on stderr (``regnet-explore COMMAND:
    warning: ...``), like the errors, each time they occur; other warnings as Python shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", category)
        shown = warnings.showwarning

        def show(message, cat, filename, lineno, file=None, line=None):
            if issubclass(cat, category):
                print(f"regnet-explore {command}: warning: {message}", file=sys.stderr)
            else:
                shown(message, cat, filename, lineno, file, line)

        warnings.showwarning = show
        yield
