"""The Realtime dialect (``/v1/realtime``, GA, with the beta shape translated at the edge).

``events.py``  the event tables: every client and server event's fields, validation, decoding
               and encoding (``parse_server_event``, ``validate_client_event``, …)
``beta.py``    the beta wire shape (``OpenAI-Beta: realtime=v1``) translated to and from GA
``restore.py`` the restore strategy: what a new connection is sent so the session goes on
``dialect.py`` :data:`REALTIME`, the :class:`~actors.proto.dialect.Dialect` these make up

The shared machinery (ClientCore's queues, acknowledgements and memory bound, the mirror's
bookkeeping, audio, errors) lives in :mod:`actors.proto`; see :mod:`actors.proto.dialect` for
the seam a second dialect (GPT-Live) fills.
"""
