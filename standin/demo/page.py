"""The browser demo page served at ``/demo``: self-contained HTML, CSS and JavaScript (no CDN).

What the page does, in order: asks ``POST /v1/demo/session`` for a client secret (header
``X-Rtfleet-Demo-Token``: the caller token, typed in or given as ``/demo#token=…``), opens the
microphone, creates an ``RTCPeerConnection`` (no ICE servers) with the ``oai-events`` data
channel, waits for ICE gathering (the answerer does not trickle), posts the offer to
``/v1/realtime/calls`` and applies the answer. Server events are logged; a text box sends a text
turn (``conversation.item.create`` + ``response.create``); remote audio plays in an ``<audio>``
element.

Progress for tests and tools is on ``window.rtfleetDemo``: ``status`` ("idle", "connecting",
"connected", "closed", "failed"), ``events`` (server events, audio-free), ``sent``, ``callId``,
``connectMs``, ``audioFrames`` (RTP audio packets received), ``audioEnergy`` (Chromium's
``totalAudioEnergy`` of the remote track), ``peakLevel`` (the loudest remote audio level seen,
0..1), ``error``; ``rtfleetDemo.waitFor(state => bool)`` returns a promise resolved when the
predicate holds (re-checked at every event and stats poll), and ``rtfleetDemo.sendText(text)``.

Server data reaches the DOM only through ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["PAGE", "CONTENT_SECURITY_POLICY"]

_STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d232b; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
.hint { color: #5a6472; margin: 0 0 1rem; }
form { display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; margin: .6rem 0; }
input[type=text], input[type=password] { padding: .35rem .5rem; border: 1px solid #b8c0cc; border-radius: 4px; }
#text { flex: 1; min-width: 16rem; }
button { padding: .35rem .9rem; border-radius: 4px; border: 1px solid #2f5fb3; background: #3a6fd0;
         color: white; cursor: pointer; }
button:disabled { background: #c5ccd6; border-color: #c5ccd6; cursor: default; }
#status { font-weight: 600; }
#status[data-state=connected] { color: #1d7a3a; }
#status[data-state=failed] { color: #b3261e; }
.panel { display: grid; grid-template-columns: 9rem 1fr; gap: .2rem .8rem; margin: .8rem 0;
         padding: .6rem .8rem; background: #f3f5f8; border-radius: 6px; }
.panel dt { color: #5a6472; }
.panel dd { margin: 0; font-variant-numeric: tabular-nums; }
#meter { height: .6rem; margin-top: .45rem; background: #dde2e9; border-radius: 3px; overflow: hidden; }
#meter-bar { height: 100%; width: 0; background: #3a6fd0; }
#transcript { white-space: pre-wrap; min-height: 1.4em; }
#log { font: 12px/1.35 ui-monospace, monospace; max-height: 24rem; overflow: auto; padding-left: 3.2rem;
       border-top: 1px solid #dde2e9; }
#log li.error { color: #b3261e; }
#log li.sent { color: #2f5fb3; }
"""

_SCRIPT = r"""
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const demo = {
    status: "idle", events: [], sent: [], callId: null, connectMs: null, error: null,
    audioFrames: 0, audioEnergy: 0, audioLevel: 0, peakLevel: 0, transcript: "",
  };
  window.rtfleetDemo = demo;
  const waiters = [];
  let pc = null, dc = null, mic = null, statsTimer = null;

  demo.waitFor = (predicate) => new Promise((resolve) => {
    if (predicate(demo)) { resolve(true); return; }
    waiters.push({ predicate, resolve });
  });
  function notify() {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].predicate(demo)) { waiters[i].resolve(true); waiters.splice(i, 1); }
    }
  }

  function setStatus(state, detail) {
    demo.status = state;
    const el = $("status");
    el.dataset.state = state;
    el.textContent = detail ? `${state}: ${detail}` : state;
    const live = state === "connected";
    $("text").disabled = !live;
    $("send").disabled = !live;
    $("hangup").disabled = !(live || state === "connecting");
    $("connect").disabled = live || state === "connecting";
    notify();
  }

  function log(kind, text) {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = text;
    const list = $("log");
    list.append(li);
    while (list.children.length > 400) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
  }

  function summary(event) {
    const t = event.type;
    if (t === "error") return `error ${event.error && event.error.code}: ${event.error && event.error.message}`;
    if (t.endsWith(".delta")) return `${t} ${JSON.stringify(event.delta)}`;
    if (t === "response.done") return `${t} (${event.response && event.response.status})`;
    if (t.startsWith("output_audio_buffer.")) return `${t} ${event.response_id || ""}`;
    return t;
  }

  function onEvent(event) {
    demo.events.push(event);
    if (event.type === "response.created") demo.transcript = "";
    if (event.type === "response.output_audio_transcript.delta" || event.type === "response.output_text.delta") {
      demo.transcript += event.delta;
      $("transcript").textContent = demo.transcript;
    }
    const last = $("log").lastElementChild;
    const text = summary(event);
    if (event.type.endsWith(".delta") && last && last.dataset.type === event.type) {
      last.textContent += ` ${JSON.stringify(event.delta)}`;
    } else {
      log(event.type === "error" ? "error" : "event", text);
      $("log").lastElementChild.dataset.type = event.type;
    }
    $("event-count").textContent = String(demo.events.length);
    notify();
  }

  function send(event) {
    if (!dc || dc.readyState !== "open") throw new Error("not connected");
    dc.send(JSON.stringify(event));
    demo.sent.push(event);
    log("sent", `→ ${event.type}`);
  }

  demo.sendText = (text) => {
    send({ type: "conversation.item.create",
           item: { type: "message", role: "user", content: [{ type: "input_text", text }] } });
    send({ type: "response.create" });
  };

  function iceGathered(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      peer.addEventListener("icegatheringstatechange", () => {
        if (peer.iceGatheringState === "complete") resolve();
      });
    });
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || JSON.stringify(body);
    } catch (e) {
      return response.statusText;
    }
  }

  async function pollStats() {
    if (!pc) return;
    const report = await pc.getStats();
    report.forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") {
        demo.audioFrames = r.packetsReceived || 0;
        demo.audioEnergy = r.totalAudioEnergy || 0;
        demo.audioLevel = r.audioLevel || 0;
        demo.peakLevel = Math.max(demo.peakLevel, demo.audioLevel);
      }
    });
    $("audio-frames").textContent = String(demo.audioFrames);
    $("audio-energy").textContent = demo.audioEnergy.toFixed(4);
    $("meter-bar").style.width = `${Math.min(100, Math.round(demo.audioLevel * 200))}%`;
    notify();
  }

  async function connect(token) {
    setStatus("connecting", "asking for a client secret");
    const started = performance.now();
    const minted = await fetch("/v1/demo/session", {
      method: "POST",
      headers: { "X-Rtfleet-Demo-Token": token, "Content-Type": "application/json" },
      body: JSON.stringify({ expires_after: { anchor: "created_at", seconds: 60 },
                             session: { type: "realtime" } }),
    });
    if (!minted.ok) throw new Error(`key endpoint: HTTP ${minted.status}: ${await errorText(minted)}`);
    const secret = (await minted.json()).value;

    setStatus("connecting", "opening the microphone");
    mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    mic.getAudioTracks().forEach((t) => { t.enabled = !$("mute").checked; });
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addEventListener("track", (e) => {
      const audio = $("remote");
      audio.srcObject = e.streams[0] || new MediaStream([e.track]);
      audio.play().catch((err) => log("error", `audio: ${err}`));
    });
    pc.addEventListener("connectionstatechange", () => {
      $("pc-state").textContent = pc.connectionState;
      if (pc.connectionState === "failed") setStatus("failed", "peer connection failed");
      if (pc.connectionState === "closed" && demo.status !== "failed") setStatus("closed");
    });
    mic.getTracks().forEach((t) => pc.addTrack(t, mic));
    dc = pc.createDataChannel("oai-events");
    dc.addEventListener("message", (e) => {
      try { onEvent(JSON.parse(e.data)); } catch (err) { log("error", `bad message: ${err}`); }
    });
    dc.addEventListener("open", () => {
      demo.connectMs = Math.round(performance.now() - started);
      setStatus("connected", `call ${demo.callId} in ${demo.connectMs} ms`);
    });
    dc.addEventListener("close", () => {
      if (demo.status === "connected" || demo.status === "connecting") setStatus("closed", "data channel closed");
    });

    setStatus("connecting", "gathering ICE candidates");
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
    setStatus("connecting", "posting the offer");
    const answer = await fetch("/v1/realtime/calls", {
      method: "POST",
      headers: { "Authorization": `Bearer ${secret}`, "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (answer.status !== 201) throw new Error(`calls: HTTP ${answer.status}: ${await errorText(answer)}`);
    demo.callId = (answer.headers.get("Location") || "").split("/").pop() || null;
    $("call-id").textContent = demo.callId || "–";
    await pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
    statsTimer = setInterval(() => { pollStats().catch(() => {}); }, 200);
  }

  function hangup() {
    if (statsTimer) clearInterval(statsTimer);
    statsTimer = null;
    if (dc) dc.close();
    if (pc) pc.close();
    if (mic) mic.getTracks().forEach((t) => t.stop());
    pc = dc = mic = null;
    setStatus("closed", "hung up");
  }
  demo.hangup = hangup;

  $("connect-form").addEventListener("submit", (e) => {
    e.preventDefault();
    connect($("token").value).catch((err) => {
      demo.error = String(err && err.message || err);
      log("error", demo.error);
      if (pc) pc.close();
      setStatus("failed", demo.error);
    });
  });
  $("hangup").addEventListener("click", hangup);
  $("mute").addEventListener("change", () => {
    if (mic) mic.getAudioTracks().forEach((t) => { t.enabled = !$("mute").checked; });
  });
  $("turn-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    try { demo.sendText(text); $("text").value = ""; } catch (err) { log("error", String(err)); }
  });

  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) $("token").value = fragment.get("token");
  if (fragment.get("mute") === "1") $("mute").checked = true;
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar
  setStatus("idle");
})();
"""

_BODY = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rtfleet · WebRTC demo</title>
<style>{style}</style>
</head>
<body>
<h1>rtfleet · WebRTC demo</h1>
<p class="hint">The embedded server's deterministic model over WebRTC: your microphone goes up the
audio track, the model's voice (a tone) comes down it, events travel on the
<code>oai-events</code> data channel.</p>
<form id="connect-form">
  <label>Demo token <input id="token" type="password" autocomplete="off" required></label>
  <button id="connect" type="submit">Connect</button>
  <button id="hangup" type="button" disabled>Hang up</button>
  <label><input id="mute" type="checkbox"> mute microphone</label>
</form>
<dl class="panel">
  <dt>status</dt><dd id="status" data-state="idle">idle</dd>
  <dt>call</dt><dd id="call-id">–</dd>
  <dt>peer connection</dt><dd id="pc-state">–</dd>
  <dt>server events</dt><dd id="event-count">0</dd>
  <dt>audio packets</dt><dd id="audio-frames">0</dd>
  <dt>audio energy</dt><dd id="audio-energy">0</dd>
  <dt>level</dt><dd><div id="meter"><div id="meter-bar"></div></div></dd>
  <dt>model says</dt><dd id="transcript"></dd>
</dl>
<form id="turn-form">
  <input id="text" type="text" placeholder="Type a message for the model" disabled>
  <button id="send" type="submit" disabled>Send</button>
</form>
<audio id="remote" autoplay></audio>
<ol id="log"></ol>
<script>{script}</script>
</body>
</html>
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


PAGE = _BODY.format(style=_STYLE, script=_SCRIPT).encode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_hash(_SCRIPT)}; style-src {_hash(_STYLE)}; "
    "connect-src 'self'; media-src 'self' blob: mediastream:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
