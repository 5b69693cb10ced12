"""A Twilio-style Media Streams bridge: phone calls over WebSocket into fleet sessions.

::

    bridge = MediaStreamsBridge(fleet, config={"instructions": "Be brief."})
    url = await nursery.start(bridge.serve)              # "ws://127.0.0.1:PORT/"
    # point the phone provider's <Stream url="…"> at it

One provider WebSocket is one call. Its JSON text frames (PROTOCOL.md §5) are bridged to one
realtime session of the fleet, G.711 µ-law passed through both ways (the session is opened with
``audio/pcmu`` input and output, whatever else ``config`` says):

* ``connected`` is noted; ``start`` checks ``mediaFormat`` (``audio/x-mulaw``, 8000 Hz, mono;
  anything else is refused: the socket is closed with 1003) and opens the fleet session;
* ``media`` (inbound track) -> ``input_audio_buffer.append`` with the same base64 payload;
* realtime ``response.output_audio.delta`` -> provider ``media`` frames of 20 ms (160 bytes), a
  ``mark`` after the frames of every delta, and a final one when the item's audio is done (the
  partial last frame padded with µ-law silence, 0xFF);
* provider ``mark`` echoes are the playback clock: the milliseconds of the item up to the last
  acknowledged mark have been heard;
* realtime ``input_audio_buffer.speech_started`` while audio is still unacknowledged (barge-in)
  -> provider ``clear`` and realtime ``conversation.item.truncate`` with ``audio_end_ms`` = the
  acknowledged milliseconds; marks the provider returns for the cleared audio are ignored, and
  late deltas of the interrupted item are dropped (counted);
* ``dtmf`` -> a fleet ``info`` event ``{"event": "media_streams.dtmf", "digit"}`` on the call's
  session; with ``dtmf="text"`` the digit also goes to the model as a user text item
  ``"DTMF <digit>"`` (no response is requested: the model answers on the next turn);
* ``stop``, or the socket closing, removes the fleet session.

A call the fleet cannot take (``FleetError``, e.g. ``max_sessions``) is refused: the socket is
closed with 1013 and the bridge serves on.

Malformed provider frames (not JSON, unknown ``event``, missing fields, bad base64, media
before ``start``, a mark never sent) never end the call: each is counted
(``MediaStreamsCall.malformed``, ``MediaStreamsBridge.malformed``), logged, and published as a
fleet ``info`` event ``{"event": "media_streams.malformed", "detail"}`` once a session exists.

A realtime reconnect is the fleet's business (the session is supervised): the phone socket
stays up, caller audio is queued by the session's core while the realtime socket is down (at
most once, freshest kept, drops reported), and the playback state is kept.

Modules:

* :mod:`orchestrator.media_streams.call`: :class:`MediaStreamsCall`, the sans-I/O core (provider
  frames and realtime events in, actions out: ``ToProvider``, ``ToRealtime``, ``OpenSession``,
  ``EndCall``, ``Notice``); no trio, no sockets.
* :mod:`orchestrator.media_streams.bridge`: :class:`MediaStreamsBridge`, its trio shell
  (trio-websocket server, one nursery per call, actions performed against the fleet).
"""
