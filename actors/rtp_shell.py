"""The trio shell around an :class:`~actors.proto.rtp.stream.RtpStream`: one call's RTP socket.

Shared by the SIP actor (``actors.sip_phone.PhoneCall``) and the embedded server's SIP calls
(``standin.sessions.sip_call.SipMediaCall``). Two tasks, until cancelled:

* the reader: each datagram in goes to ``stream.receive``; audio (when the stream has no
  jitter buffer) goes to ``on_audio``, digits to ``on_digit``; ``on_packet`` after each packet
  of the stream (counters, "activity" events);
* the pacer: sleeps until the stream's next 20 ms deadline and sends what ``stream.tick`` says
  (a send that fails is a lost datagram, as UDP goes); then the frames the jitter buffer
  played out go to ``on_audio``, and ``on_tick(sent)`` runs.

Callbacks never block (they run in the socket tasks).
"""

from __future__ import annotations

from typing import Any, Callable

import trio

from actors.proto.rtp.stream import Received, RtpStream

__all__ = ["run_rtp"]


def _ignore(*_args: Any) -> None:
    return None


async def run_rtp(sock: Any, stream: RtpStream, destination: tuple[str, int], *,
                  on_audio: Callable[[bytes], None] = _ignore,
                  on_digit: Callable[[str], None] = _ignore,
                  on_packet: Callable[[Received], None] = _ignore,
                  on_tick: Callable[[int], None] = _ignore) -> None:
    """Run the stream on ``sock`` (a bound trio UDP socket) until cancelled."""

    async def reader() -> None:
        while True:
            data, _ = await sock.recvfrom(2048)
            received = stream.receive(data, trio.current_time())
            if received is None:
                continue
            on_packet(received)
            if received.audio is not None:
                on_audio(received.audio)
            for digit in received.digits:
                on_digit(digit)

    async def pacer() -> None:
        stream.start(trio.current_time())
        while True:
            await trio.sleep_until(stream.next_deadline())
            sent = 0
            for datagram in stream.tick(trio.current_time()):
                try:
                    await sock.sendto(datagram, destination)
                except OSError:
                    continue  # UDP: a lost datagram (e.g. ICMP unreachable reported late)
                stream.sent()
                sent += 1
            for frame in stream.take_audio():
                on_audio(frame)
            on_tick(sent)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(pacer)
