"""Fleet.freeze_heap: the objects alive once the sessions are up leave the cyclic collector's
walks (a full collection then walks only what came since), and the fleet's close thaws them."""

import gc

from orchestrator.fleet import open_fleet


async def test_a_frozen_heap_is_left_out_of_full_collections_until_the_fleet_closes():
    assert gc.get_freeze_count() == 0
    async with open_fleet() as fleet:
        sids = [await fleet.add_session() for _ in range(3)]
        for sid in sids:
            await fleet.wait_connected(sid)
        tracked = len(gc.get_objects())
        frozen = fleet.freeze_heap()
        assert frozen == gc.get_freeze_count() and frozen >= tracked // 2
        assert len(gc.get_objects()) < tracked - frozen // 2  # a full collection's walk
        assert await fleet.ask(sids[0], "still answering?")  # the sessions go on
    assert gc.get_freeze_count() == 0  # thawed: what the fleet left can be collected
