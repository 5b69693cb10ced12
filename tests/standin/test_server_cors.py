"""CORS on the browser-facing paths (standin/front/cors.py), over loopback with httpx."""

import httpx
import pytest
import trio

from standin import EmbeddedServer

ORIGIN = "http://127.0.0.1:5173"


def _preflight(path: str, origin: str = ORIGIN, headers: str = "authorization,content-type"):
    return ("OPTIONS", path, {"Origin": origin, "Access-Control-Request-Method": "POST",
                              "Access-Control-Request-Headers": headers})


async def _serve(nursery, **kwargs) -> EmbeddedServer:
    server = EmbeddedServer(api_keys={"sk-cors"}, webrtc=False, **kwargs)
    await nursery.start(server.serve)
    return server


@pytest.mark.parametrize("engine", ["lean", "hypercorn"])
async def test_preflights_are_answered_on_secrets_and_calls_for_any_origin(nursery, engine):
    server = await _serve(nursery, engine=engine)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        for path in ("/v1/realtime/client_secrets", "/v1/realtime/calls",
                     "/v1/realtime/calls/rtc_x/hangup"):
            method, url, headers = _preflight(path, headers="authorization, content-type, x-stainless-os")
            answer = await client.request(method, url, headers=headers)
            assert answer.status_code == 204, path
            assert answer.headers["access-control-allow-origin"] == "*"
            assert "POST" in answer.headers["access-control-allow-methods"]
            allowed = [h.strip() for h in answer.headers["access-control-allow-headers"].split(",")]
            assert allowed == ["authorization", "content-type", "x-stainless-os"]
        # the actual request from that origin carries the headers too (here, a mint)
        minted = await client.post("/v1/realtime/client_secrets", json={},
                                   headers={"Authorization": "Bearer sk-cors", "Origin": ORIGIN})
        refused = await client.post("/v1/realtime/client_secrets", json={}, headers={"Origin": ORIGIN})
    assert minted.status_code == 200 and minted.json()["value"].startswith("ek_")
    assert minted.headers["access-control-allow-origin"] == "*"
    assert "Location" in minted.headers["access-control-expose-headers"]
    # an error the page must be able to read gets them as well
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"


async def test_a_header_the_service_does_not_allow_is_left_out_of_the_preflight(nursery):
    server = await _serve(nursery)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        method, url, headers = _preflight("/v1/realtime/calls", headers="authorization,originator")
        answer = await client.request(method, url, headers=headers)
    assert answer.status_code == 204
    assert "originator" not in answer.headers["access-control-allow-headers"]


async def test_listed_origins_are_echoed_and_others_refused(nursery):
    server = await _serve(nursery, cors_origins=[ORIGIN, "https://app.example"])
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        ok = await client.request(*_preflight("/v1/realtime/calls")[:2],
                                  headers=_preflight("/v1/realtime/calls")[2])
        method, url, headers = _preflight("/v1/realtime/calls", origin="http://evil.example")
        other = await client.request(method, url, headers=headers)
        post = await client.post("/v1/realtime/client_secrets", json={},
                                 headers={"Authorization": "Bearer sk-cors", "Origin": "http://evil.example"})
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert ok.headers["vary"] == "Origin"
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    assert "--cors-origin" in other.text
    # the request itself is served (it is the browser that refuses to show it) but unmarked
    assert post.status_code == 200 and "access-control-allow-origin" not in post.headers


async def test_other_paths_get_no_cors_and_cors_can_be_off(nursery):
    server = await _serve(nursery, demo_token="t")
    off = await _serve(nursery, cors_origins=())
    async with httpx.AsyncClient() as client:
        method, _, headers = _preflight("/v1/demo/session")
        demo = await client.request(method, server.base_url + "/v1/demo/session", headers=headers)
        calls = await client.request(method, off.base_url + "/v1/realtime/calls", headers=headers)
    assert "access-control-allow-origin" not in demo.headers
    assert calls.status_code == 405 and "access-control-allow-origin" not in calls.headers


def test_a_bad_origin_is_refused_when_the_server_is_made():
    with pytest.raises(ValueError, match="not an origin"):
        EmbeddedServer(api_keys={"k"}, cors_origins=["http://x.example/path"])


async def test_rtfleet_serve_takes_its_origins_from_flags():
    from tests.orchestrator.serve_process import rtfleet_serve

    with trio.fail_after(60):
        async with rtfleet_serve("--cors-origin", ORIGIN, "--cors-origin", "https://app.example") as serve:
            assert f"CORS for {ORIGIN}, https://app.example" in serve.banner
            async with httpx.AsyncClient(base_url=serve.url) as client:
                ok = await client.request(*_preflight("/v1/realtime/calls")[:2],
                                          headers=_preflight("/v1/realtime/calls")[2])
                method, url, headers = _preflight("/v1/realtime/calls", origin="http://other.example")
                other = await client.request(method, url, headers=headers)
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == ORIGIN
    assert other.status_code == 403
