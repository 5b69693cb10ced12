"""GPT-Live over WebRTC on the embedded server: ``POST /v1/live/sessions`` (I/O shell).

As the hosted service (``openai.types.live.LiveCreateParams``): a JSON body ``{"session": {model,
instructions, audio.output.voice, input, …}, "transport": {"type": "webrtc", "sdp": offer}}``
with a standard key or an ``ek_`` secret; the answer is ``201`` ``{"session": {"id"},
"transport": {"type": "webrtc", "sdp": answer}}``. Creation starts the session: its
``session.started`` is the first event on the ``oai-events`` data channel (no ``session.start``
there), audio flows on the media track both ways, and the call is in ``server.calls`` under the
session id (so ``/v1/live/sessions/{id}/attach`` finds it). The call itself is the Realtime
WebRTC call's shell (:mod:`standin.sessions.rtc_session`) around a
:class:`~standin.model.live.LiveSession`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import trio

from standin.front.responses import error_body, read_body, respond_json
from standin.model.events import IdFactory
from standin.model.live import LIVE_MODELS, LiveSession
from standin.sessions.rtc_route import authenticate_call, CallRefusal, start_call

if TYPE_CHECKING:
    from standin.host import CallHost

__all__ = ["handle_live_create"]


async def handle_live_create(server: CallHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["method"] != "POST":
        await respond_json(send, 405, error_body("Use POST", "method_not_allowed"), [(b"allow", b"POST")])
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    try:
        auth = authenticate_call(server, headers, allow_secret=True)
        body = await read_body(receive)
        if body is None:
            raise CallRefusal(413, "Request body too large", "request_too_large")
        try:
            request = json.loads(body)
        except ValueError:
            raise CallRefusal(400, "The body is not valid JSON.", "invalid_json") from None
        transport = request.get("transport") if isinstance(request, dict) else None
        if not isinstance(transport, dict) or transport.get("type") != "webrtc" \
                or not isinstance(transport.get("sdp"), str):
            raise CallRefusal(400, "transport must be {type: 'webrtc', sdp: <offer>}.",
                           "missing_required_parameter", "transport.sdp")
        session = LiveSession(server.model_config, IdFactory(), server.clock(), transport="webrtc",
                              models=None if server.models is None else server.models | LIVE_MODELS)
        session_id = session.ids.new("sess_live")
        refused = session.start_for_call({"session": request.get("session")}, session_id,
                                         trio.current_time())
        if refused is not None:
            raise CallRefusal(400, refused["message"], refused["code"], refused.get("param"))
        _, answer = await start_call(server, auth, transport["sdp"], session,
                                     (scope.get("client") or (None,))[0], call_id=session_id)
    except CallRefusal as exc:
        await respond_json(send, exc.status, error_body(exc.message, exc.code, param=exc.param))
        return
    await respond_json(send, 201, {"session": {"id": session_id},
                                   "transport": {"type": "webrtc", "sdp": answer}})
