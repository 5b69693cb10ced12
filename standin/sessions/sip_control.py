"""HTTP call control for SIP calls: ``POST /v1/realtime/calls/{call_id}/accept|reject|refer|hangup``,
and on the GPT-Live surface ``POST /v1/live/sessions/{live_id}/accept|reject|refer|hangup`` (the
same calls, named by the ``live_…`` id of ``live.transport.incoming``; accept takes
``{"session": {"model": …, "instructions": …}}`` and the call's model is a Live session; the
first accept on either surface wins, the other then answers ``409``).

All four take a standard API key (``Authorization: Bearer sk-…``; ``401`` ``invalid_api_key``)
and answer ``200 {}`` (PROTOCOL.md "SIP", openai-python ``resources/realtime/calls.py``):

=========  ===========================================  ==========================================
action     body                                         effect
=========  ===========================================  ==========================================
accept     a session config, ``type: "realtime"``       200 OK + SDP answer; the model runs on RTP
           required (``model``, ``instructions``,
           ``audio``, … as for ``session.update``)
reject     ``{"status_code": 486}`` (default 603)       the INVITE gets that final status
refer      ``{"target_uri": "sip:…"|"tel:…"}``          pending: 302 + Contact; live: REFER
hangup     (none)                                       pending: 603; live: BYE
=========  ===========================================  ==========================================

Errors: ``404`` ``call_not_found`` (no such SIP call, or the caller hung up: accept may race a
CANCEL), ``409`` ``call_already_decided``, ``400`` for a bad body (``invalid_json``,
``invalid_value``, ``missing_required_parameter``, a session config error), ``405`` for a
method other than POST, ``413`` for a body over 1 MiB.

Routing (``app.py``), when the server has a SIP side (``sip_port``): accept/reject/refer
always come here; ``hangup`` only for SIP calls (pending or live), WebRTC calls keep theirs in
``calls.py`` (which also answers ``404`` for everything when there is no SIP side).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from standin.front.responses import error_body, read_body, respond_json
from standin.sessions.sip_uas import CallControlError

if TYPE_CHECKING:
    from standin.host import SipHost

__all__ = ["handle_call_control", "is_call_control_path"]

_ACTION = re.compile(r"^/v1/realtime/calls/(?P<call_id>[^/]+)/(?P<action>accept|reject|refer|hangup)$")
#: the same controls on the GPT-Live surface, by the call's ``live_…`` id
_LIVE_ACTION = re.compile(r"^/v1/live/sessions/(?P<call_id>live_[^/]+)/(?P<action>accept|reject|refer|hangup)$")


def is_call_control_path(server: SipHost, path: str) -> bool:
    """Whether ``path`` is SIP call control (see the module docstring for ``hangup``)."""
    sip = server.sip
    if sip is None:  # no SIP side: these paths do not exist (calls.py: 404)
        return False
    if _LIVE_ACTION.match(path):
        return True
    match = _ACTION.match(path)
    if match is None:
        return False
    return match.group("action") != "hangup" or match.group("call_id") in sip.calls


async def handle_call_control(server: SipHost, scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"].rstrip("/")
    live = _LIVE_ACTION.match(path)
    match = live or _ACTION.match(path)
    assert match is not None
    call_id, action = match.group("call_id"), match.group("action")
    if scope["method"] != "POST":
        await respond_json(send, 405, error_body("Use POST", "method_not_allowed"), [(b"allow", b"POST")])
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    value = headers.get("authorization", "")
    token = value[7:].strip() or None if value[:7].lower() == "bearer " else None
    auth = server.authenticate(token, allow_secret=False)
    if auth.kind is None:
        await respond_json(send, 401, error_body(auth.reason, "invalid_api_key"))
        return
    try:
        body = await _json_body(receive)
        sip = server.sip
        if sip is None:
            raise CallControlError(404, f"No call with id '{call_id}'.", "call_not_found", "call_id")
        if live is not None:  # the Live surface: accept takes {"session": {...}}
            if action == "accept":
                sip.accept_live(call_id, body or {})
                await respond_json(send, 200, {})
                return
            call_id = sip.call_id_of(call_id)
        if action == "accept":
            if body is None:
                raise CallControlError(400, "The body must be a session config with type 'realtime'.",
                                       "missing_required_parameter", "type")
            sip.accept(call_id, body)
        elif action == "reject":
            sip.reject(call_id, (body or {}).get("status_code", 603))
        elif action == "refer":
            if not body or "target_uri" not in body:
                raise CallControlError(400, "target_uri is required.", "missing_required_parameter",
                                       "target_uri")
            sip.refer(call_id, body["target_uri"])
        else:
            await sip.hangup(call_id)
    except CallControlError as exc:
        await respond_json(send, exc.status, error_body(exc.message, exc.code, param=exc.param))
        return
    await respond_json(send, 200, {})


async def _json_body(receive: Any) -> dict[str, Any] | None:
    body = await read_body(receive)
    if body is None:
        raise CallControlError(413, "Request body too large", "request_too_large")
    if not body.strip():
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        raise CallControlError(400, "The body is not valid JSON.", "invalid_json") from None
    if not isinstance(parsed, dict):
        raise CallControlError(400, "The body must be a JSON object.", "invalid_json")
    return parsed
