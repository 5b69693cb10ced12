"""The embedded server's FaultPlan on SIP calls, over loopback with real sockets.

rtfleet's own phone dials the embedded SIP side; the call is announced by webhook and accepted
by a :class:`~orchestrator.sip_controller.SipController`; the fleet session is the SIP actor in
sideband mode (its realtime leg is the call's ``?call_id=`` WebSocket). Then, one after another:

* a drop of the realtime leg (``drop_after_s=0``): the sideband is closed, the call is not: the
  actor goes reconnecting -> connected on the same call, RTP flows both ways all along, and a
  turn after it is answered (and played to the phone by RTP);
* ``latency_ms``: sideband events arrive that much later;
* ``expire_after_s``: the call ends like a hosted session at its limit (``session_expired`` to
  the sidebands, then BYE), and so does the session.

Waits are on events (session events, states, the call's own events); ``fail_after`` is a net.
"""

from __future__ import annotations

from typing import Any

import trio

from actors.events import EventKind
from actors.sip import SipOptions, current_call
from actors.sip_phone import SipPhone
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer, FaultPlan
from standin.keys.webhooks import new_webhook_secret
from orchestrator.sip_controller import SipController


class Events:
    def __init__(self, subscription: Any) -> None:
        self.sub, self.seen = subscription, []

    async def wait(self, predicate: Any) -> Any:
        async for event in self.sub:
            self.seen.append(event)
            if predicate(event):
                return event
        raise AssertionError("subscription closed")


def server_event(kind: str) -> Any:
    return lambda e: e.kind is EventKind.SERVER and e.payload["type"] == kind


def state(name: str) -> Any:
    return lambda e: e.kind is EventKind.STATE and e.payload["to"] == name


async def _rtp_flows(call: Any, media: Any) -> None:
    """Wait until RTP has gone both ways since now (phone -> server and server -> phone)."""
    sent, heard = media.rtp_received, call.rtp_received
    while media.rtp_received <= sent or call.rtp_received <= heard:
        await call.activity.wait()


async def test_sip_call_survives_a_realtime_leg_drop_latency_and_expires() -> None:
    secret = new_webhook_secret()
    config = {"type": "realtime", "output_modalities": ["audio"],
              "audio": {"input": {"turn_detection": None}}}
    controller = SipController(secret, config, attach_sessions=False)
    with trio.fail_after(45):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(controller.serve)
            server = EmbeddedServer.with_generated_key(sip_port=0, webhook_url=url, webhook_secret=secret)
            async with open_fleet(server=server, api_key=server.api_key, config=config) as fleet:
                controller.attach(None, api_base=fleet.url, api_key=server.api_key)
                phone = SipPhone()
                await nursery.start(phone.run)
                options = SipOptions(phone, target=f"sip:openai@127.0.0.1:{server.sip.port}",
                                     call_id=controller.call_id_for, credentials=fleet.keys.credential)
                async with fleet.subscribe(buffer=float("inf")) as sub:
                    events = Events(sub)
                    sid = await fleet.add_session("caller", transport="sip", sip_options=options,
                                                  policy="transient", replay=False)
                    await fleet.wait_connected(sid)
                    call = current_call(sid)
                    (call_id,) = controller.accepted
                    media = server.calls[call_id]
                    assert call is not None and media.live

                    # turn 1, before any fault
                    fleet.send_nowait(sid, user_text("hi"))
                    fleet.send_nowait(sid, {"type": "response.create"})
                    await events.wait(server_event("response.done"))

                    # the realtime leg drops: the sideband is closed, the call is not
                    server.faults = FaultPlan(drop_after_s=0)
                    await events.wait(state("reconnecting"))
                    server.faults = FaultPlan()
                    await _rtp_flows(call, media)  # while the sideband is down
                    await events.wait(state("connected"))
                    assert server.sip.stats.sidebands_dropped >= 1
                    assert server.stats.faults.drops["after_s"] >= 1
                    assert not call.ended.is_set() and media.live and server.calls[call_id] is media
                    assert server.sip.stats.calls_ended == 0 and current_call(sid) is call
                    assert len([e for e in events.seen if e.kind is EventKind.INFO
                                and e.payload.get("event") == "sip.dialing"]) == 1  # never redialled

                    # turn 2 on the new sideband; its answer is played to the phone by RTP
                    played = media.audio_frames_sent
                    fleet.send_nowait(sid, user_text("again"))
                    fleet.send_nowait(sid, {"type": "response.create"})
                    done = await events.wait(server_event("response.done"))
                    assert done.payload["response"]["status"] == "completed"
                    await events.wait(server_event("output_audio_buffer.stopped"))
                    assert media.audio_frames_sent > played

                    # latency: sideband events come that much later than they are made
                    server.faults = FaultPlan(latency_ms=300)
                    asked = trio.current_time()
                    fleet.send_nowait(sid, user_text("slowly"))
                    fleet.send_nowait(sid, {"type": "response.create"})
                    await events.wait(server_event("response.created"))
                    assert trio.current_time() - asked >= 0.3
                    await events.wait(server_event("response.done"))
                    assert server.stats.faults.delayed_events > 0

                    # expiry ends the call (BYE to the phone) and the session with it
                    # (the sideband gets ``error`` ``session_expired`` first, but the phone's BYE
                    # usually wins the race to the actor, which then closes the sideband at once)
                    server.faults = FaultPlan(expire_after_s=0)
                    await call.ended.wait()
                    assert "remote" in call.end_reason, call.end_reason
                    await fleet.wait_state(sid, "closed", "error")
                    assert fleet.status(sid).last_exit.reason.value == "normal"
                    await media.ended.wait()
                    assert media.end_reason == "session expired"
                    assert server.stats.faults.sessions_expired == 1
            nursery.cancel_scope.cancel()
