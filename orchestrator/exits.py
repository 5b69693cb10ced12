"""Exit codes and the user-facing errors that decide them, for ``rtfleet`` and its commands.

====  =====================================================================
code  meaning
====  =====================================================================
0     success (a run whose thresholds all held)
1     the run completed but a threshold failed
2     bad input or usage: unreadable/malformed scenario, unknown option
3     the run could not be carried out (target unreachable, no API key, …)
4     the run stopped at its budget (``budget:`` / ``--max-cost``): sessions closed, results
      written (``"verdict": "budget"``)
130   interrupted (Ctrl-C, SIGINT): ``rtfleet run`` first closes the sessions and writes
      the partial results (``"verdict": "interrupted"``); a second Ctrl-C quits at once
143   terminated (SIGTERM), with partial results as for 130
====  =====================================================================

``cli.main`` maps :class:`UsageError` to 2 and :class:`RunFailed` to 3, printing the message as
one line on stderr (never a traceback); the commands (``commands.py``) raise them or return a
code from here. Both import this module, and it imports neither.
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_THRESHOLDS", "EXIT_USAGE", "EXIT_RUNTIME", "EXIT_BUDGET", "EXIT_INTERRUPTED",
           "EXIT_TERMINATED", "UsageError", "RunFailed"]

EXIT_OK = 0
EXIT_THRESHOLDS = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3
EXIT_BUDGET = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UsageError(Exception):
    """Bad input from the user: exit 2 with the message."""


class RunFailed(Exception):
    """The run could not be carried out: exit 3 with the message."""
