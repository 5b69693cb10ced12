"""``python -m orchestrator`` is ``rtfleet``."""

from orchestrator.cli import main_entry

main_entry()
