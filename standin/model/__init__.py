"""The deterministic model: conversation, responses, VAD, audio, the session config and the timer
that wakes a session at its next deadline. Sans-I/O except ``timer.py`` (its trio shell)."""
