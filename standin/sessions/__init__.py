"""Sessions: one per WebSocket connection (``websocket.py``), one per WebRTC call (``rtc_route.py``
answers ``POST /v1/realtime/calls``, ``rtc_answer.py`` the SDP and aiortc peer, ``rtc_session.py``
the call's model loop), one per SIP call (``sip_uas.py`` the UAS, ``sip_call.py`` the call's RTP
and model, ``sip_control.py`` the accept/reject/hangup routes), each leaving a record behind
(``standin/records.py``)."""
