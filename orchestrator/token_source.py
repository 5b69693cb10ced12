"""Bearer tokens from a command: Entra ID (Azure AD) tokens for Azure OpenAI, or any token.

``TokenCommand("az account get-access-token --resource https://cognitiveservices.azure.com
--query accessToken -o tsv")`` runs the command, takes its standard output (stripped) as the
token and keeps it until ``refresh_margin`` seconds before it expires: the ``exp`` claim when
the token is a JWT (read, not verified: the service verifies it), else ``default_ttl`` after
it was fetched.  ``token(force=True)`` runs the command again (the service refused the token:
a 401).  Concurrent callers share one run (single flight).

The token is a :class:`~actors.credentials.Secret` (kind ``token``): never in reprs, logs or
errors; a failing command's message carries its exit status and the end of its standard
error, never its standard output.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import time
from collections.abc import Sequence
from typing import Any, Callable

import attrs
import trio

from actors.credentials import Secret, redact

__all__ = ["TokenCommand", "TokenCommandError", "jwt_expiry"]


class TokenCommandError(Exception):
    """The token command failed or printed nothing.  Never carries the token."""


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (unix seconds) of a JWT, or None when ``token`` is no JWT with one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims: Any = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


@attrs.define(repr=False)
class TokenCommand:
    #: a shell-style command line (split with ``shlex``, no shell) or an argument list
    command: str | Sequence[str]
    #: run the command again this long before the token expires
    refresh_margin: float = 300.0
    #: how long a token without a readable expiry is kept
    default_ttl: float = 45 * 60.0
    timeout: float = 60.0
    clock: Callable[[], float] = time.time
    runs: int = attrs.field(default=0, init=False)
    _current: Secret | None = attrs.field(default=None, init=False)
    _running: trio.Event | None = attrs.field(default=None, init=False)
    _error: TokenCommandError | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        return f"TokenCommand(runs={self.runs}, token={self._current!r})"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)

    async def token(self, *, force: bool = False) -> Secret:
        current = self._current
        if not force and current is not None and not current.expired(self.clock(), self.refresh_margin):
            return current
        if self._running is not None:  # another task runs the command: share its result
            await self._running.wait()
            if self._current is not None and self._current is not current:
                return self._current
            if self._error is not None:
                raise self._error
        event = self._running = trio.Event()
        self._error = None
        try:
            self._current = await self._run()
            return self._current
        except TokenCommandError as exc:
            self._error = exc
            raise
        finally:
            self._running = None
            event.set()

    async def _run(self) -> Secret:
        argv = self.argv
        name = argv[0] if argv else "(empty)"
        self.runs += 1
        try:
            with trio.fail_after(self.timeout):
                done = await trio.run_process(argv, capture_stdout=True, capture_stderr=True,
                                              check=False, stdin=subprocess.DEVNULL)
        except trio.TooSlowError:
            raise TokenCommandError(f"token command {name!r} took over {self.timeout:g}s") from None
        except OSError as exc:
            raise TokenCommandError(f"token command {name!r} could not run: {exc.strerror or exc}") from None
        value = done.stdout.decode("utf-8", "replace").strip()
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip()[-200:]
            raise TokenCommandError(f"token command {name!r} exited {done.returncode}"
                                    + (f": {redact(tail, value)}" if tail else ""))
        if not value or len(value.split()) != 1:
            raise TokenCommandError(f"token command {name!r} printed no single token on stdout")
        now = self.clock()
        expires = jwt_expiry(value) or now + self.default_ttl
        return Secret(value, expires_at=expires, kind="token")
