"""Where a realtime service's paths are, and how a credential goes on the wire.

An :class:`Endpoint` turns "connect to this service with this credential" into URLs and
headers; the actors and the key manager ask it instead of building paths themselves::

    endpoint = AzureEndpoint("https://res.openai.azure.com", deployment="rt", api_version="2025-08-28")
    endpoint.websocket_url(model="gpt-realtime")
    # 'wss://res.openai.azure.com/openai/realtime?api-version=2025-08-28&deployment=rt'
    endpoint.auth_headers(Secret("…", kind="api_key"))    # [("api-key", "…")]

* :class:`OpenAIEndpoint`: ``{base}/v1/realtime?model=…``, ``{base}/v1/realtime/calls``,
  ``{base}/v1/realtime/client_secrets``, ``Authorization: Bearer``; with ``headers`` it is the
  generic target for other Realtime-compatible services (extra headers on every request).
* :class:`AzureEndpoint`: the paths and headers of the official ``openai`` SDK's
  ``AsyncAzureOpenAI(azure_endpoint=…, api_version=…, azure_deployment=…)``: WebSocket
  ``{endpoint}/openai/realtime?[call_id|intent…&]api-version=V&deployment=D``; HTTP paths
  ``{endpoint}/openai/realtime/{calls,client_secrets}?api-version=V``; a standard key as
  ``api-key: …``, an Entra ID token or an ``ek_`` client secret as ``Authorization: Bearer``.
  The SDK always says ``wss://``; an ``http://`` endpoint (a local server) gets ``ws://``.

Pure values: no I/O; secrets are revealed only into the header list returned.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from actors.credentials import Secret

__all__ = ["Endpoint", "OpenAIEndpoint", "AzureEndpoint", "BEARER_KINDS", "realtime_ws_url",
           "realtime_calls_url", "ws_url"]

#: credential kinds that travel as ``Authorization: Bearer`` on Azure (a standard key is
#: ``api-key``); on OpenAI-shaped services every credential is a bearer
BEARER_KINDS = frozenset({"client_secret", "token"})

Headers = tuple[tuple[str, str], ...]


class Endpoint(Protocol):
    #: the service's origin as an http(s) URL (logs, pre-flight checks, reports)
    base: str
    #: sent with every request (generic targets: the scenario's ``headers``)
    headers: Headers

    def websocket_url(self, *, model: str | None, call_id: str | None = None,
                      intent: str | None = None) -> str: ...

    def calls_url(self) -> str: ...

    def client_secrets_url(self) -> str: ...

    def auth_headers(self, credential: Secret) -> list[tuple[str, str]]: ...


def _headers(value: object) -> Headers:
    items = value.items() if isinstance(value, dict) else value
    return tuple((str(k), str(v)) for k, v in items)  # type: ignore[union-attr]


def _http_base(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) or ws(s) URL: {url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))


def ws_url(base: str, endpoint: str, query: str = "") -> str:
    """``{base}/v1/{endpoint}`` as a ws(s) URL from an http(s)/ws(s) base (``/v1`` optional)."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a websocket or http URL: {base!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(f"/v1/{endpoint}"):
        path = (path if path.endswith("/v1") else path + "/v1") + f"/{endpoint}"
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def realtime_ws_url(base: str, *, model: str | None, call_id: str | None,
                    intent: str | None = None) -> str:
    """``{base}/v1/realtime?model=…`` from an http(s)/ws(s) base URL (path ``/v1`` optional);
    ``?call_id=…`` for a sideband, ``?intent=transcription`` for a transcription session."""
    if intent is not None:
        if call_id is not None:
            raise ValueError("a sideband (call_id) has no intent")
        return ws_url(base, "realtime", urlencode({"intent": intent}))
    if (model is None) == (call_id is None):
        raise ValueError("exactly one of model and call_id must be given")
    query = urlencode({"model": model} if model is not None else {"call_id": call_id})
    return ws_url(base, "realtime", query)


def realtime_calls_url(base: str) -> str:
    """``{base}/v1/realtime/calls`` from an http(s)/ws(s) base URL (path ``/v1`` optional)."""
    parts = urlsplit(base)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http or websocket URL: {base!r}")
    path = parts.path.rstrip("/")
    for suffix in ("/realtime/calls", "/realtime"):
        if path.endswith("/v1" + suffix):
            path = path[: -len(suffix)]
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((scheme, parts.netloc, path + "/realtime/calls", "", ""))


@attrs.frozen
class OpenAIEndpoint:
    """OpenAI's paths under ``base`` (``/v1`` optional); ``headers`` go on every request."""

    base: str = attrs.field(converter=_http_base)
    headers: Headers = attrs.field(default=(), converter=_headers, repr=False)

    def websocket_url(self, *, model: str | None, call_id: str | None = None,
                      intent: str | None = None) -> str:
        return realtime_ws_url(self.base, model=model, call_id=call_id, intent=intent)

    def calls_url(self) -> str:
        return realtime_calls_url(self.base)

    def client_secrets_url(self) -> str:
        base = self.base[: -len("/v1")] if self.base.endswith("/v1") else self.base
        return base + "/v1/realtime/client_secrets"

    def auth_headers(self, credential: Secret) -> list[tuple[str, str]]:
        value = credential.reveal()
        return [("Authorization", f"Bearer {value}")] if value else []


@attrs.frozen
class AzureEndpoint:
    """An Azure OpenAI resource's realtime deployment, addressed as the ``openai`` SDK does."""

    #: the resource, e.g. ``https://my-resource.openai.azure.com``
    endpoint: str = attrs.field(converter=_http_base)
    deployment: str = attrs.field()
    api_version: str = attrs.field()
    headers: Headers = attrs.field(default=(), converter=_headers, repr=False)

    @deployment.validator
    @api_version.validator
    def _non_empty(self, attribute: attrs.Attribute, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError(f"{attribute.name} must be a non-empty string")

    @property
    def base(self) -> str:
        return self.endpoint

    def _url(self, scheme: str, path: str, query: list[tuple[str, str]]) -> str:
        parts = urlsplit(self.endpoint)
        # the endpoint's own query first, then the call's (the SDK merges them in that order)
        merged = [*parse_qsl(parts.query, keep_blank_values=True), *query]
        return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/openai" + path,
                           urlencode(merged), ""))

    def websocket_url(self, *, model: str | None, call_id: str | None = None,
                      intent: str | None = None) -> str:
        """``…/openai/realtime?[call_id=…|intent=…&]api-version=…&deployment=…``. The
        deployment names the model (``model`` is not sent, as with the SDK's
        ``azure_deployment``)."""
        if call_id is not None and intent is not None:
            raise ValueError("a sideband (call_id) has no intent")
        scheme = "ws" if self.endpoint.startswith("http://") else "wss"
        first = [("call_id", call_id)] if call_id is not None else (
            [("intent", intent)] if intent is not None else [])
        return self._url(scheme, "/realtime",
                         [*first, ("api-version", self.api_version), ("deployment", self.deployment)])

    def calls_url(self) -> str:
        return self._url(urlsplit(self.endpoint).scheme, "/realtime/calls",
                         [("api-version", self.api_version)])

    def client_secrets_url(self) -> str:
        return self._url(urlsplit(self.endpoint).scheme, "/realtime/client_secrets",
                         [("api-version", self.api_version)])

    def auth_headers(self, credential: Secret) -> list[tuple[str, str]]:
        value = credential.reveal()
        if not value:
            return []
        if credential.kind in BEARER_KINDS:
            return [("Authorization", f"Bearer {value}")]
        return [("api-key", value)]
