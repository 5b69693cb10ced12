"""The browser demo: ``/demo`` and its key-vending route (``routes.py``) and the page (``page.py``)."""
