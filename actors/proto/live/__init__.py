"""GPT-Live (``/v1/live/sessions``), the second dialect behind rtfleet's one actor contract.

``events.py`` (the wire tables), ``edge.py`` (the per-session translator to and from the one
contract), ``config.py`` (``session.start``), ``restore.py`` (a new session seeded with text),
``dialect.py`` (:data:`LIVE`, what :class:`~actors.proto.client.ClientCore` is given).
"""
