"""Remote targets beyond OpenAI's own: Azure OpenAI, and headers for compatible services.

::

    target:
      azure:
        endpoint: https://my-resource.openai.azure.com
        deployment: gpt-realtime
        api_version: 2025-08-28
        auth: {type: token, command: "az account get-access-token --resource https://cognitiveservices.azure.com --query accessToken -o tsv"}

    target: {url: wss://realtime.example.com, headers: {X-Tenant: acme, X-Token: "${MY_TOKEN}"}}

`AzureTarget` is the ``azure:`` mapping; `AzureAuth` says where its credential comes from:
``type: api_key`` (the ``api-key`` header; the key from ``env``, default
``AZURE_OPENAI_API_KEY``) or ``type: token`` (an Entra ID bearer token from ``env``, default
``AZURE_OPENAI_AD_TOKEN``, or from ``command``'s standard output, run again near the token's
expiry and on a 401). Header values may name environment variables (``${NAME}``), expanded
at run time (`expand_headers`), so no secret need be written in a scenario file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from .checks import one_of
from .errors import InvalidField

__all__ = ["AUTH_TYPES", "AzureAuth", "AzureTarget", "KEY_MODES", "check_headers",
           "expand_headers", "http_url"]

AUTH_TYPES = ("api_key", "token")
KEY_MODES = ("direct", "ephemeral")
_DEFAULT_ENV = {"api_key": "AZURE_OPENAI_API_KEY", "token": "AZURE_OPENAI_AD_TOKEN"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def http_url(value: Any, field: str = "endpoint") -> None:
    """Raise `InvalidField` at ``field`` unless ``value`` is an http(s) or ws(s) URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError as exc:
        raise InvalidField(f"not a valid URL ({exc}): {value!r}", (field,)) from None
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise InvalidField(f"expected an https:// URL (e.g. https://my-resource.openai.azure.com), "
                           f"got {value!r}", (field,))


def check_headers(headers: Mapping[str, str], field: str = "headers") -> None:
    """Header names are HTTP tokens; values hold no line breaks and only well-formed ``${NAME}``."""
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidField(f"{name!r} is not a valid header name", (field, name))
        if "\r" in value or "\n" in value:
            raise InvalidField("a header value cannot span lines", (field, name))
        rest = _REFERENCE.sub("", value)
        if "${" in rest:
            raise InvalidField("write an environment variable as ${NAME} (letters, digits, _)",
                               (field, name))


def expand_headers(headers: Mapping[str, str], environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The headers with every ``${NAME}`` replaced from ``environ``; a missing variable is a
    ``KeyError`` naming it (never a value)."""
    out = []
    for name, value in headers.items():
        def lookup(match: re.Match[str]) -> str:
            variable = match.group(1)
            if variable not in environ:
                raise KeyError(f"header {name}: environment variable {variable} is not set")
            return environ[variable]

        out.append((name, _REFERENCE.sub(lookup, value)))
    return tuple(out)


def _auth_type(instance: AzureAuth, attribute: attrs.Attribute, value: str) -> None:
    one_of(*AUTH_TYPES)(instance, attribute, value)


@attrs.frozen
class AzureAuth:
    """Where an Azure target's credential comes from (see the module docstring)."""

    type: str = attrs.field(default="api_key", validator=_auth_type)
    #: the environment variable holding the key or token (default by type)
    env: str | None = None
    #: ``type: token`` only: a command printing the token (run without a shell)
    command: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.command is not None:
            if self.type != "token":
                raise InvalidField("command gives a bearer token: use it with type: token", ("command",))
            if self.env is not None:
                raise InvalidField("give env or command, not both", ("command",))
            if not self.command.strip():
                raise InvalidField("must not be empty", ("command",))
        if self.env is not None and not self.env.strip():
            raise InvalidField("must not be empty", ("env",))

    @property
    def variable(self) -> str | None:
        """The environment variable to read (None: the token comes from ``command``)."""
        return None if self.command is not None else self.env or _DEFAULT_ENV[self.type]


def _endpoint(_instance: Any, _attribute: attrs.Attribute, value: str) -> None:
    http_url(value, "endpoint")


def _required(_instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not value.strip():
        raise InvalidField("must not be empty", (attribute.name,))


def _api_version(value: Any) -> Any:
    """YAML reads an unquoted ``2025-08-28`` as a date: take it as the version it spells."""
    import datetime

    return value.isoformat() if isinstance(value, datetime.date) else value


def _headers(_instance: Any, _attribute: attrs.Attribute, value: dict[str, str]) -> None:
    check_headers(value)


@attrs.frozen
class AzureTarget:
    """An Azure OpenAI resource's realtime deployment (file: ``target: {azure: {...}}``)."""

    endpoint: str = attrs.field(validator=_endpoint)
    deployment: str = attrs.field(validator=_required)
    api_version: str = attrs.field(converter=_api_version, validator=_required)
    auth: AzureAuth = attrs.field(factory=AzureAuth)
    #: ``direct``: every session connects with the key or token itself (what the SDK does);
    #: ``ephemeral``: sessions use client secrets minted with it (needed for webrtc)
    key_mode: str = attrs.field(default="direct", validator=one_of(*KEY_MODES))
    headers: dict[str, str] = attrs.field(factory=dict, validator=_headers)

    @property
    def label(self) -> str:
        """How results and reports name the target (no secret in it)."""
        return f"azure {self.endpoint.rstrip('/')} deployment {self.deployment}"
