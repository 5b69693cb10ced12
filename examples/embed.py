"""Embed an rtfleet fleet in your own trio program (runs offline against the embedded server).

    python examples/embed.py
"""

import trio

from rtfleet import open_fleet, user_text


async def main() -> None:
    async with open_fleet(config={"instructions": "Be brief.", "output_modalities": ["text"]}) as fleet:
        sessions = [await fleet.add_session() for _ in range(3)]
        for sid in sessions:
            await fleet.wait_connected(sid)
        async with fleet.subscribe(types=["response.output_text.done"]) as answers:
            for sid in sessions:
                await fleet.send(sid, user_text(f"Hello from {sid}"))
                await fleet.send(sid, {"type": "response.create"})
            for _ in sessions:
                event = await answers.receive()
                print(f"{event.session_id}: {event.payload['text']}")
        final = await fleet.remove_session(sessions[0])  # it leaves statuses()
        print(f"{sessions[0]}: {final.state.value} (removed)")
        for sid, status in fleet.statuses().items():
            print(f"{sid}: {status.state.value}, reconnects={status.reconnects}, last_error={status.last_error}")


if __name__ == "__main__":
    trio.run(main)
