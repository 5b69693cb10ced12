"""Sans-I/O RTP for telephony: packets, stream (de)packetizing, pacing, jitter, DTMF.

    packet.py       RtpPacket encode/decode (RFC 3550), RtpError > RtpDecodeError
    packetizer.py   RtpPacketizer, RtpDepacketizer, 20 ms pacing math (Pacer)
    jitter.py       JitterBuffer: reorder, conceal loss with silence, drop late packets
    dtmf.py         RFC 4733 telephone-event payloads and a once-per-key detector

Nothing here reads a clock or touches a socket: times are parameters.
"""

from .dtmf import DtmfDetector, DtmfDigit, DtmfEvent, dtmf_events, event_for_digit
from .jitter import PCMA_SILENCE, PCMU_SILENCE, JitterBuffer, JitterStats, seq_delta
from .packet import RtpDecodeError, RtpError, RtpPacket, is_rtcp
from .packetizer import (DepacketizerStats, Pacer, RtpDepacketizer, RtpPacketizer, frames_due,
                         send_time)

__all__ = [
    "DepacketizerStats", "DtmfDetector", "DtmfDigit", "DtmfEvent", "JitterBuffer",
    "JitterStats", "PCMA_SILENCE", "PCMU_SILENCE", "Pacer", "RtpDecodeError",
    "RtpDepacketizer", "RtpError", "RtpPacket", "RtpPacketizer", "dtmf_events",
    "event_for_digit", "frames_due", "is_rtcp", "send_time", "seq_delta",
]
