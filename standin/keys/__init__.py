"""Key vending and webhooks: ephemeral client secrets (``client_secrets.py``) and signed
``realtime.call.incoming`` webhooks (``webhooks.py``)."""
