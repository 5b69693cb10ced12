"""The trio <-> asyncio bridge for aiortc: the one package that imports aiortc and asyncio.

Everything WebRTC in rtfleet (the client actor :mod:`actors.webrtc`, the embedded server's
answerer :mod:`standin.sessions.rtc_answer`) goes through this package, so the rest of the
code stays pure trio. One job per module::

    media.py   the audio and data-channel constants, RtcError, tone()
    loop.py    open_rtc_loop() / current_rtc_loop() / RtcLoop, and the executor fix
    ice.py     host_addresses_for(): the loopback policy for ICE host candidates
    inbox.py   Inbox: pyee callbacks -> a trio memory channel (pure trio)
    tracks.py  PcmTrack (24 kHz PCM16 in -> Opus frames out) and the 48 kHz stereo downmixer
    peer.py    RtcPeer: one RTCPeerConnection driven from trio

The pieces::

    open_rtc_loop()        async context manager: one trio-asyncio loop (+ its encoder thread
                           pool) that any number of peer connections share; yields an RtcLoop
    current_rtc_loop()     the RtcLoop opened by the nearest enclosing open_rtc_loop(), or None
    RtcPeer                one RTCPeerConnection: the "oai-events" data channel (paced sends),
                           one sendrecv audio track fed with 24 kHz PCM16 mono, remote audio
                           decoded to 24 kHz PCM16 mono, connection state surfaced
    Inbox                  a pyee-callback -> trio memory channel hop with a drop counter
    host_addresses_for()   the loopback policy for ICE host candidates

Loop sharing (why one loop per process, not per connection)
    A trio-asyncio loop is cheap to *use* but not free to open: a loop nursery, a thread
    pool, and the asyncio event-loop policy that trio-asyncio installs process-wide.  The
    fleet (or the embedded server, or a test fixture) opens **one** ``open_rtc_loop()`` and
    every session uses it.  The loop is found through ``current_rtc_loop()`` (a contextvar:
    trio tasks started from inside the ``async with`` inherit it) or passed explicitly.
    The WebRTC actor falls back to opening a private loop per connection when none is found,
    which works but costs a loop and a pool per session.

Fixes for aiortc under trio-asyncio (see STACK-FACTS.md, "aiortc under trio-asyncio")
    * ``close()`` hangs: trio-asyncio's ``run_in_executor`` runs the job through
      ``trio.to_thread.run_sync`` and loses a cancellation that races with the thread
      finishing, so aiortc's RTP sender task (Opus encoding runs in the executor) never ends
      and ``pc.close()`` waits for it forever.  ``open_rtc_loop`` replaces the loop's
      ``run_in_executor`` with ``asyncio.wrap_future(pool.submit(...))`` on a real
      ``ThreadPoolExecutor``, whose cancellation asyncio handles correctly.  Independently,
      :meth:`RtcPeer.aclose` stops every local track before ``pc.close()`` and bounds the
      whole close with a (shielded) timeout.
    * ICE on loopback: aioice never offers 127.0.0.1 as a host candidate.  While an
      RtcPeer gathers, a contextvar may restrict host addresses; ``host_addresses_for``
      chooses ``("127.0.0.1",)`` when the target host is loopback (``"auto"``), else aioice's
      own list.  The hook is installed once, process-wide, and changes nothing when unset.
    * ``iceServers`` defaults to ``[]`` (aiortc's default adds an off-box STUN server).
    * Data-channel bursts overflow loopback UDP buffers and stall SCTP: sends are paced with
      ``bufferedAmount`` / ``bufferedAmountLowThreshold``.
    * Decoded audio is 48 kHz stereo s16 (Opus); it is converted to 24 kHz mono PCM16.

Threads: one ``rtc-exec`` pool per loop (Opus encoding), plus aiortc's own decoder thread per
receiving track (joined when the peer closes).  Nothing here sleeps in trio; pyee callbacks
run inside the trio-asyncio loop, i.e. in trio's thread, and hand over with ``send_nowait``.
"""
