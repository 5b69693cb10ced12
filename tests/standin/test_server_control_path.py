"""``/_rtfleet/faults`` as routed by the stand-in (standin/control.py), with a test hook."""

from __future__ import annotations

import httpx
import trio

from standin import EmbeddedServer, FaultPlan


async def test_the_control_path_routes_to_its_hook_behind_the_api_key(nursery):
    posted = []

    async def hook(body):
        if body.get("action") == "bad":
            raise ValueError("action: unknown action 'bad'")
        posted.append(body)
        return {"applied": body["action"]}, None

    server = EmbeddedServer(api_keys={"sk-control"}, webrtc=False, faults=FaultPlan(reject_keys=True))
    plain = EmbeddedServer(api_keys={"sk-control"}, webrtc=False)
    server.fault_control = hook
    await nursery.start(server.serve)
    await nursery.start(plain.serve)
    auth = {"Authorization": "Bearer sk-control"}
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            ok = await http.post("/_rtfleet/faults", json={"action": "expire_keys"}, headers=auth)
            bad = await http.post("/_rtfleet/faults", json={"action": "bad"}, headers=auth)
            wrong_key = await http.post("/_rtfleet/faults", json={}, headers={"Authorization": "Bearer sk-other"})
            put = await http.put("/_rtfleet/faults", json={}, headers=auth)
            big = await http.post("/_rtfleet/faults", content=b"x" * (2 << 20), headers=auth)
            state = await http.get("/_rtfleet/faults", headers=auth)
            # the server's own paths are refused by the reject_keys fault; the control path is not
            refused = await http.post("/v1/realtime/client_secrets", json={}, headers=auth)
        async with httpx.AsyncClient(base_url=plain.base_url) as http:
            missing = await http.post("/_rtfleet/faults", json={}, headers=auth)
    assert ok.status_code == 200 and ok.json() == {"applied": "expire_keys"}
    assert posted == [{"action": "expire_keys"}]
    assert bad.status_code == 400 and bad.json()["error"] == {
        "message": "action: unknown action 'bad'", "type": "invalid_request_error", "param": None,
        "code": "invalid_fault"}
    assert wrong_key.status_code == 401 and put.status_code == 405 and big.status_code == 413
    assert state.status_code == 200 and state.json()["plan"]["reject_keys"] is True
    assert "access-control-allow-origin" not in ok.headers  # no CORS on rtfleet's own paths
    assert refused.status_code == 401
    assert missing.status_code == 404  # no hook: the path does not exist
