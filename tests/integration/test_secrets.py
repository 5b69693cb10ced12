"""No API key or client secret appears in logs, events, errors or reprs."""

import logging

import trio

from actors.events import ConnectionState
from orchestrator.fleet import open_fleet, user_text
from standin import EmbeddedServer, FaultPlan

FAKE_KEY = "sk-RECOGNISABLE-fake-key-0123456789"


async def test_secrets_never_leak_into_logs_events_errors_or_reprs(caplog):
    caplog.set_level(logging.DEBUG)
    server = EmbeddedServer(api_keys={FAKE_KEY})
    texts: list[str] = []
    from orchestrator.policy import Backoff

    async with open_fleet(server=server, api_key=FAKE_KEY, max_restarts=2,
                          backoff=Backoff(base=0.01, cap=0.05)) as fleet:
        everything = fleet.subscribe(buffer=100_000)
        ok = await fleet.add_session()
        await fleet.wait_connected(ok)
        secret = fleet.keys.current.reveal()
        assert secret.startswith("ek_")
        done = fleet.subscribe(types=["response.done"])
        await fleet.send(ok, user_text("hello"))
        await fleet.send(ok, {"type": "response.create"})
        with trio.fail_after(10):
            await done.receive()
        # Auth refused on reconnect, and the key service refusing to mint.
        server.faults = FaultPlan(reject_keys=True, drop_after_events=1, drop_mode="close", drop_close_code=1012)
        bad = await fleet.add_session(policy="transient")
        await fleet.send(ok, user_text("drop me"))
        await fleet.wait_state(ok, ConnectionState.ERROR)
        await fleet.wait_state(bad, ConnectionState.ERROR, ConnectionState.CONNECTED)
        for sid in (ok, bad):
            status = fleet.status(sid)
            texts += [repr(status), str(status.last_error), repr(status.last_exit)]
        texts += [repr(fleet.keys), repr(fleet.keys.current), repr(fleet.links[ok]),
                  repr(fleet.links[ok].core)]
    while True:
        try:
            texts.append(repr(everything.receive_nowait()))
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info) for r in caplog.records if r.exc_info]
    blob = "\n".join(texts)
    assert "authentication rejected" in blob or "refused" in blob  # the failures did happen
    assert FAKE_KEY not in blob
    assert secret not in blob
    assert FAKE_KEY[3:20] not in blob
