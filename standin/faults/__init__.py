"""Fault injection: the :class:`~standin.faults.plan.FaultPlan` (drops, latency, malformed frames,
expiry, key refusal), its relay for SIP sidebands (``sip_relay.py``) and abortive TCP closes
(``tcp_abort.py``)."""
