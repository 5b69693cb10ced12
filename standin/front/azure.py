"""Azure OpenAI's request shapes, read as the OpenAI-shaped routes expect them (one ASGI scope
rewrite in front of the routes, so no route knows about Azure).

What the official ``openai`` SDK's ``AsyncAzureOpenAI`` sends, and what is accepted:

=====================================================  =========================================
Azure request                                          served as
=====================================================  =========================================
WebSocket ``/openai/realtime?api-version=V&deployment=D``  ``/v1/realtime?model=D``
  (``call_id=…`` / ``intent=…`` first, when given)     (a sideband keeps ``call_id``, no model)
``POST /openai/realtime/client_secrets?api-version=V``  ``POST /v1/realtime/client_secrets``
``POST /openai/realtime/calls?api-version=V`` (+ ``/{id}/…``)  ``POST /v1/realtime/calls…``
``/openai/v1/realtime…`` (Azure's v1 paths)            ``/v1/realtime…`` (no ``api-version``)
header ``api-key: K``                                  ``Authorization: Bearer K``
=====================================================  =========================================

On the ``/openai/realtime…`` paths ``api-version`` is required (``400``
``missing_required_parameter``, as Azure answers), and so is ``deployment`` on the WebSocket.
The deployment name stands for the model (Azure's sessions report the deployment's model;
here the name is the model). Versions are not checked against a list.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["AzureRefusal", "is_azure_path", "azure_scope"]

_LEGACY = "/openai/realtime"
_V1 = "/openai/v1/realtime"


class AzureRefusal(Exception):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def is_azure_path(path: str) -> bool:
    return _under(path, _LEGACY) or _under(path, _V1)


def azure_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """``scope`` rewritten to the OpenAI shape (path, query, auth header); raises
    :class:`AzureRefusal` for a request Azure would refuse (no ``api-version``, no
    ``deployment``)."""
    path = scope["path"].rstrip("/") or "/"
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if _under(path, _V1):
        new_path = "/v1/realtime" + path[len(_V1):]
    else:
        new_path = "/v1/realtime" + path[len(_LEGACY):]
        names = {k for k, _ in query}
        if "api-version" not in names:
            raise AzureRefusal("Missing required query parameter: api-version.", "api-version")
        if scope["type"] == "websocket" and new_path == "/v1/realtime":
            deployment = next((v for k, v in query if k == "deployment"), "")
            if not deployment:
                raise AzureRefusal("Missing required query parameter: deployment.", "deployment")
            if "call_id" not in names and "model" not in names:
                query.append(("model", deployment))
        query = [(k, v) for k, v in query if k not in ("api-version", "deployment")]
    headers = list(scope.get("headers") or [])
    names = {k.lower() for k, _ in headers}
    if b"authorization" not in names:
        key = next((v for k, v in headers if k.lower() == b"api-key"), None)
        if key is not None:
            headers.append((b"authorization", b"Bearer " + key.strip()))
    return {**scope, "path": new_path, "raw_path": new_path.encode("latin-1"),
            "query_string": urlencode(query).encode("latin-1"), "headers": headers}
