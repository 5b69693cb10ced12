"""What a run needs to reach a remote target: its endpoint, credential and key mode.

``remote_access(target, os.environ)`` reads the key or token the target names from the
environment (a missing one is a ``LookupError`` naming the variable, never a value), expands
``${NAME}`` in its headers, and builds the :mod:`actors.endpoint` value and, for a token
command, the :class:`~orchestrator.token_source.TokenCommand`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from actors.credentials import Secret
from actors.endpoint import AzureEndpoint, Endpoint, OpenAIEndpoint
from orchestrator.token_source import TokenCommand

from .model import AzureTarget, RemoteTarget
from .targets import _REFERENCE, expand_headers

__all__ = ["RemoteAccess", "remote_access", "secret_values"]


@attrs.frozen(repr=False)
class RemoteAccess:
    endpoint: Endpoint
    #: the standard credential (None: ``token_source`` fetches it)
    api_key: Secret | None
    token_source: TokenCommand | None
    key_mode: str
    #: how results name the target
    label: str

    def __repr__(self) -> str:
        return f"RemoteAccess({self.label!r}, key_mode={self.key_mode}, key={self.api_key!r})"


def remote_access(target: RemoteTarget | AzureTarget, environ: Mapping[str, str]) -> RemoteAccess:
    try:
        headers = expand_headers(target.headers, environ)
    except KeyError as exc:
        raise LookupError(exc.args[0]) from None
    if isinstance(target, RemoteTarget):
        key = environ.get(target.api_key_env)
        if not key:
            raise LookupError(f"no API key: set {target.api_key_env} for target {target.url}")
        return RemoteAccess(OpenAIEndpoint(target.url, headers=headers), Secret(key, kind="api_key"),
                            None, "ephemeral", target.url)
    endpoint = AzureEndpoint(target.endpoint, deployment=target.deployment,
                             api_version=target.api_version, headers=headers)
    auth = target.auth
    source = None
    secret = None
    if auth.command is not None:
        source = TokenCommand(auth.command)
    else:
        variable = auth.variable
        assert variable is not None
        value = environ.get(variable)
        if not value:
            what = "an API key" if auth.type == "api_key" else "an Entra ID token"
            raise LookupError(f"no {what}: set {variable} for target {target.label}")
        secret = Secret(value, kind="api_key" if auth.type == "api_key" else "token")
    return RemoteAccess(endpoint, secret, source, target.key_mode, target.label)


def secret_values(target: object, environ: Mapping[str, str]) -> list[str]:
    """The values a run against ``target`` must never show: its key or token from the
    environment and the header values expanded from it (a live page scrubs them)."""
    if not isinstance(target, (RemoteTarget, AzureTarget)):
        return []
    variables = ([target.api_key_env] if isinstance(target, RemoteTarget)
                 else [v for v in [target.auth.variable] if v])
    variables += [m.group(1) for value in target.headers.values() for m in _REFERENCE.finditer(value)]
    return [environ[v] for v in variables if environ.get(v)]
