"""The embedded realtime-compatible server: everything runs offline, on one machine, with no key.

Public API: :class:`EmbeddedServer` (serve, auth, observability), :func:`run_server` (for the CLI),
:func:`generate_api_key`, :class:`FaultPlan` (fault injection), :class:`ModelConfig` and
:class:`RealtimeSession` (the sans-I/O deterministic model).
"""

from standin.faults.plan import FaultPlan, FaultStats
from standin.model.realtime import ModelConfig, RealtimeSession
from standin.server import AuthResult, EmbeddedServer, ServerStats, generate_api_key, run_server
from standin.records import ConnectionRecord

__all__ = [
    "AuthResult",
    "ConnectionRecord",
    "EmbeddedServer",
    "FaultPlan",
    "FaultStats",
    "ModelConfig",
    "RealtimeSession",
    "ServerStats",
    "generate_api_key",
    "run_server",
]
