"""The deterministic model: conversation, responses, VAD, audio, the session config and the timer
that wakes a session at its next deadline. Sans-I/O except ``timer.py`` (its trio shell).

``dialect.py`` is the seam: :class:`~standin.model.dialect.ModelSession` is what every session
shell drives, and its table says which modules belong to the Realtime dialect and which every
dialect shares.
"""
