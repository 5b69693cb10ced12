"""The HTTP front: the lean h11 + websockets server (``lean.py``) that serves the ASGI app
(``standin/app.py``, the routes), and the JSON/HTTP response helpers every route uses
(``responses.py``)."""
