"""A browser app on another origin talks to the server, as in the hosted service's browser guide.

Two loopback origins: the rtfleet server on one port, and "the app" on another: a tiny backend
(the lean front serving a test ASGI app) that serves the page and mints a client secret with
the server's API key (the key never reaches the page). Headless Chromium loads the page from the
app's origin; the page fetches ``/session`` from its own backend, opens the fake microphone
and the ``oai-events`` channel, and posts its SDP offer **cross-origin** to
``/v1/realtime/calls`` with ``Authorization`` and ``Content-Type: application/sdp`` (a
preflight), reads the call id from the exposed ``Location`` header, hears the microphone's tone
answered (a VAD turn), completes a text turn and plays the model's audio. A second server with
CORS off proves the browser really enforces the origin: the same post fails there.

Skips without Chromium unless ``RTFLEET_REQUIRE_BROWSER`` is set (CI sets it).
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

pytest.importorskip("aiortc", reason="needs the webrtc extra: pip install -e .[webrtc]")

from standin import EmbeddedServer
from standin.front.lean import serve_front

from tests.browser_cdp import chromium_or_skip, launch_chromium
from tests.standin.test_server_demo_browser import MEDIA_FLAGS, write_microphone

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>my app</title></head><body>
<p>my realtime app</p><audio id="remote" autoplay></audio>
<script>
"use strict";
const app = { events: [], status: "idle", error: null, callId: null, energy: 0, transcript: "" };
window.app = app;
const waiters = [];
app.waitFor = (p) => new Promise((resolve) => { if (p(app)) resolve(true); else waiters.push({ p, resolve }); });
const notify = () => { for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].p(app)) { waiters[i].resolve(true); waiters.splice(i, 1); } };
let pc, dc;
app.post = async (base, secret, sdp) => fetch(`${base}/v1/realtime/calls`, {
  method: "POST", headers: { "Authorization": `Bearer ${secret}`, "Content-Type": "application/sdp" }, body: sdp });
app.connect = async (base) => {
  const minted = await (await fetch("/session", { method: "POST" })).json();
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  pc = new RTCPeerConnection({ iceServers: [] });
  pc.addEventListener("track", (e) => { const a = document.getElementById("remote"); a.srcObject = e.streams[0]; a.play(); });
  mic.getTracks().forEach((t) => pc.addTrack(t, mic));
  dc = pc.createDataChannel("oai-events");
  dc.addEventListener("message", (e) => {
    const event = JSON.parse(e.data);
    app.events.push(event);
    if (event.type === "response.created") app.transcript = "";
    if (event.type === "response.output_audio_transcript.delta") app.transcript += event.delta;
    notify();
  });
  dc.addEventListener("open", () => { app.status = "connected"; notify(); });
  await pc.setLocalDescription(await pc.createOffer());
  if (pc.iceGatheringState !== "complete") await new Promise((r) => pc.addEventListener(
    "icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") r(); }));
  const answer = await app.post(base, minted.value, pc.localDescription.sdp);
  if (answer.status !== 201) throw new Error(`calls: HTTP ${answer.status}`);
  app.callId = (answer.headers.get("Location") || "").split("/").pop();
  await pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
  setInterval(async () => {
    (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "audio") app.energy = r.totalAudioEnergy || 0; });
    notify();
  }, 200);
  return app.callId;
};
app.say = (text) => {
  dc.send(JSON.stringify({ type: "conversation.item.create",
    item: { type: "message", role: "user", content: [{ type: "input_text", text }] } }));
  dc.send(JSON.stringify({ type: "response.create" }));
};
</script></body></html>"""


def app_backend(server: EmbeddedServer):
    """The app's own origin: its page, and ``POST /session`` minting with the server's key."""
    minted: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["path"] == "/session":
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    f"{server.base_url}/v1/realtime/client_secrets",
                    json={"session": {"type": "realtime", "model": "gpt-realtime"}},
                    headers={"Authorization": f"Bearer {server.api_key}"})
            body, kind = answer.content, b"application/json"
            minted.append(answer.json()["value"])
        else:
            body, kind = PAGE.encode(), b"text/html"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app, minted


async def test_a_page_on_another_origin_calls_the_server_over_webrtc(tmp_path, nursery):
    chromium = chromium_or_skip()
    server = EmbeddedServer.with_generated_key(webrtc=True)
    await nursery.start(server.serve)
    closed = EmbeddedServer.with_generated_key(webrtc=True, cors_origins=())
    await nursery.start(closed.serve)
    app, minted = app_backend(server)
    app_url = await nursery.start(serve_front, app, "127.0.0.1", 0)
    assert app_url.rsplit(":", 1)[1] != server.base_url.rsplit(":", 1)[1]  # two origins

    write_microphone(tmp_path / "mic.wav")
    flags = [*MEDIA_FLAGS, f"--use-file-for-fake-audio-capture={tmp_path / 'mic.wav'}%noloop"]
    async with launch_chromium(chromium, tmp_path / "profile", extra_flags=flags) as browser:
        page = await browser.new_page()
        with trio.fail_after(30):
            await page.navigate(f"{app_url}/")
            call_id = await page.evaluate(f"app.connect({json.dumps(server.base_url)})",
                                          await_promise=True)
            await page.evaluate("app.waitFor(a => a.status === 'connected')", await_promise=True)
        assert call_id and call_id.startswith("rtc_") and call_id in server.calls
        # a page may also mint straight from the server (a dev setup with the key in the page):
        # that JSON post is preflighted too
        with trio.fail_after(20):
            direct = await page.evaluate(
                f"fetch({json.dumps(server.base_url + '/v1/realtime/client_secrets')}, {{method: 'POST',"
                f" headers: {{'Authorization': 'Bearer {server.api_key}', 'Content-Type': 'application/json'}},"
                " body: JSON.stringify({session: {type: 'realtime'}})}).then(r => r.json()).then(b => b.value)",
                await_promise=True)
        assert direct.startswith("ek_") and server.stats.client_secrets_minted == 2
        assert len(minted) == 1 and server.calls[call_id].record.auth_kind == "client_secret"

        # the microphone's tone is a spoken turn: the server's VAD answers it
        with trio.fail_after(20):
            await page.evaluate("app.waitFor(a => a.events.some(e => e.type === 'output_audio_buffer.stopped'))",
                                await_promise=True)
        with trio.fail_after(20):
            await page.evaluate("app.say('hello from another origin')")
            await page.evaluate(
                "app.waitFor(a => a.events.filter(e => e.type === 'response.done').length >= 2"
                " && a.transcript === 'You said: hello from another origin')", await_promise=True)
            await page.evaluate("app.waitFor(a => a.energy > 0.001)", await_promise=True)
        types = await page.evaluate("app.events.map(e => e.type)")
        assert types[0] == "session.created"
        assert "input_audio_buffer.speech_started" in types

        # the same post to a server without CORS: the browser refuses it before any SDP is sent
        with trio.fail_after(20):
            refused = await page.evaluate(
                f"app.post({json.dumps(closed.base_url)}, 'ek_whatever', 'v=0').then("
                "r => 'answered ' + r.status, e => e.name + ': ' + e.message)", await_promise=True)
        assert refused.startswith("TypeError"), refused
        assert closed.stats.calls_answered == 0 and not closed.calls
