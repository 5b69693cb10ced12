"""Exit codes of ``rtfleet`` and the user-facing errors that end a command.

A leaf module (it imports nothing from rtfleet), so that the command line
(:mod:`orchestrator.cli`), the command bodies (:mod:`orchestrator.commands`) and the
scenario runner and workers can all name the same codes without importing each other.
:func:`orchestrator.cli.main` is the one place that turns an outcome into a code.

Exit codes:

====  ==========================  =============================================================
0     ``EXIT_OK``                 success (a run whose thresholds all held)
1     ``EXIT_THRESHOLDS``         the run completed but a threshold failed
2     ``EXIT_USAGE``              bad input or usage: unreadable/malformed scenario, unknown option
3     ``EXIT_RUNTIME``            the run could not be carried out (target unreachable, no API key, …)
130   ``EXIT_INTERRUPTED``        interrupted (Ctrl-C)
====  ==========================  =============================================================

Exceptions (each prints one line on stderr, never a traceback)::

    UsageError (Exception)      bad input from the user: exit 2 with the message
    RunFailed (Exception)       the run could not be carried out: exit 3 with the message
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_THRESHOLDS", "EXIT_USAGE", "EXIT_RUNTIME", "EXIT_INTERRUPTED",
           "UsageError", "RunFailed"]

EXIT_OK = 0
EXIT_THRESHOLDS = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: exit 2 with the message."""


class RunFailed(Exception):
    """The run could not be carried out: exit 3 with the message."""
