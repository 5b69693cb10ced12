"""The trio shell around an :class:`~actors.proto.rtp.stream.RtpStream`: one call's RTP socket.

Shared by the SIP actor (``actors.sip_phone.PhoneCall``) and the embedded server's SIP calls
(``standin.sessions.sip_call.SipMediaCall``). Until cancelled:

* the receiving side rides the process's RTP inbox (:mod:`actors.rtp_inbox`), one task that
  drains every call's socket when it is readable (a reader task per call where there is no
  epoll): each datagram in goes to ``stream.receive``; audio (when the stream has no jitter
  buffer) goes to ``on_audio``, digits to ``on_digit``; ``on_packet`` after each packet of
  the stream (counters, "activity" events);
* the sending side rides the process's audio clock (:mod:`actors.pacer`), not a task of its
  own: the call joins a phase slot, its 20 ms schedule starts on that slot's grid, and at each
  of the slot's ticks the clock's task sends what ``stream.tick`` says (a send that fails is
  a lost datagram, as UDP goes: a full send buffer too, since a late frame is no use), then
  hands the frames the jitter buffer played out to ``on_audio`` and runs ``on_tick(sent)``.
  A thousand calls cost the process the clock's few wake-ups per 20 ms, not a thousand.

The clock sends and the inbox receives without a task switch, so they need a socket they can
use synchronously: a second descriptor of the call's socket (``os.dup``: same port, same
socket, non-blocking), closed when the call's media stops. Callbacks never block (they run in
the inbox's task or the clock's); what one raises ends that call only.
"""

from __future__ import annotations

import os
import socket as stdlib_socket
from typing import Any, Callable

import attrs
import trio

from actors.pacer import audio_clock
from actors.rtp_inbox import rtp_inbox
from actors.proto.rtp.stream import PTIME, Received, RtpStream

__all__ = ["RtpPaced", "run_rtp"]


def _ignore(*_args: Any) -> None:
    return None


@attrs.define(eq=False)
class RtpPaced:
    """One call's sending side on the audio clock (an :class:`actors.pacer.Paced`)."""

    stream: RtpStream
    #: sends one datagram now, without waiting (raises ``OSError`` when it cannot)
    send: Callable[[bytes], object]
    on_audio: Callable[[bytes], None] = _ignore
    on_tick: Callable[[int], None] = _ignore
    slot: int = 0
    tick: int = 0
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None

    def step(self, due: float) -> bool:
        """The frames due at this tick; False (and ``error``) if a callback failed."""
        stream = self.stream
        assert stream.pacer is not None, "stream.start(...) before the clock's first tick"
        if stream.next_deadline() > due + PTIME / 2:
            return True  # a tick the clock runs late, whose frame a catch-up already sent
        try:
            sent = 0
            for datagram in stream.tick(trio.current_time()):
                try:
                    self.send(datagram)
                except OSError:  # UDP: a lost datagram (a full buffer, ICMP unreachable)
                    continue
                stream.sent()
                sent += 1
            for frame in stream.take_audio():
                self.on_audio(frame)
            self.on_tick(sent)
        except Exception as exc:
            self.error = exc
            return False
        return True


async def run_rtp(sock: Any, stream: RtpStream, destination: tuple[str, int], *,
                  on_audio: Callable[[bytes], None] = _ignore,
                  on_digit: Callable[[str], None] = _ignore,
                  on_packet: Callable[[Received], None] = _ignore,
                  on_tick: Callable[[int], None] = _ignore) -> None:
    """Run the stream on ``sock`` (a bound trio UDP socket) until cancelled; raises what a
    callback raised."""

    def deliver(data: bytes, now: float) -> None:
        received = stream.receive(data, now)
        if received is None:
            return
        on_packet(received)
        if received.audio is not None:
            on_audio(received.audio)
        for digit in received.digits:
            on_digit(digit)

    async def reader() -> None:  # no inbox (no epoll here): a task of the call's own
        while True:
            data, _ = await sock.recvfrom(2048)
            deliver(data, trio.current_time())

    clock = audio_clock()
    assert clock.frame == PTIME, "the audio clock's frame is one RTP packet"
    inbox = rtp_inbox()
    sender = stdlib_socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
    paced = RtpPaced(stream, lambda datagram: sender.sendto(datagram, destination),
                     on_audio=on_audio, on_tick=on_tick)

    def receive_failed(exc: BaseException) -> None:
        paced.error = exc
        clock.remove(paced)  # sets paced.done

    try:
        sender.setblocking(False)
        clock.join(paced)
        stream.start(clock.time_of(paced.tick))
        if inbox is not None:
            inbox.add(sender, deliver, receive_failed)
        async with trio.open_nursery() as nursery:
            if inbox is None:
                nursery.start_soon(reader)
            await paced.done.wait()  # an RTP stream has no end of its own: a failure ended it
            nursery.cancel_scope.cancel()
        assert paced.error is not None
        raise paced.error
    finally:
        if inbox is not None:
            inbox.remove(sender)
        clock.remove(paced)
        sender.close()
