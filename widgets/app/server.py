"""``python -m workbench.widgets.app.server``: ``panel serve`` as ``workbench review`` runs it.

The same command line as ``panel serve`` (TLS with ``--ssl-certfile``/``--ssl-keyfile``, a reverse
proxy's headers with ``--use-xheaders``), with three changes for a page served to a team:

- the component resource route (``/components/...``) serves only Panel's and Bokeh's own
  resources (:mod:`workbench.widgets.app.resources`) and, in team mode, only to signed-in users;
- ``--sign-in-password-file FILE`` (instead of Panel's ``--basic-auth``) turns on the team sign-in:
  any name with the password in FILE, compared in constant time, with wrong passwords throttled per
  client address (``WORKBENCH_SIGN_IN_ATTEMPTS`` tries, then locked out for ``WORKBENCH_SIGN_IN_LOCKOUT``
  seconds, each lock-out logged) and per name (:data:`ACCOUNT_FACTOR` times as many tries, from any
  addresses), and cookies marked ``SameSite=Lax`` and, over TLS, ``Secure``. Behind a proxy
  (``--use-xheaders``) the client's address is the last ``X-Forwarded-For`` entry, the one the
  documented proxy sets; ``X-Real-Ip``, which a client may send through it, is ignored;
- ``--sign-in-template FILE`` is the sign-in page (Jinja2, as Panel's ``--basic-login-template``;
  default: the workbench's offline page, :data:`workbench.widgets.app.LOGIN_PAGE`);
- ``--review-model URI``: the model ``/review`` shows when its URL names none;
- a request whose ``Host`` is not an IP address, ``localhost``, a host of ``--allow-websocket-origin``
  or a name in ``WORKBENCH_ALLOWED_HOSTS`` is refused with 403 (:class:`HostGuard`: DNS rebinding).

Without app files it serves the review app (:data:`workbench.widgets.app.APP_FILE`).
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tornado.escape
import tornado.routing
import tornado.web
from bokeh.command.subcommand import Argument
from panel.auth import BasicAuthProvider, BasicLoginHandler
from panel.command.serve import Serve
from panel.io.server import AuthenticatedStaticFileHandler, ComponentResourceHandler

from workbench.config import get_settings
from workbench.widgets.app import APP_FILE, DEFAULT_MODEL_ENV, LOGIN_PAGE
from workbench.widgets.app.resources import SafeComponentResources

__all__ = ["HostGuard", "ReviewServe", "SignInThrottle", "main"]

_log = logging.getLogger("workbench.review")


class ReviewComponentHandler(SafeComponentResources, AuthenticatedStaticFileHandler, ComponentResourceHandler):
    """Panel's component resources: Panel's and Bokeh's only, to signed-in users in team mode."""


#: A name is locked out after this many times the wrong passwords an address may try (the
#: password is shared, so a name is no secret: it bounds guessing spread over many addresses).
ACCOUNT_FACTOR = 4
#: Most clients whose wrong passwords are counted, and most lock-outs kept: the oldest go first.
MAX_TRACKED = 10_000


@dataclass
class SignInThrottle:
    """Wrong passwords per client: after ``attempts`` in a row the client is locked out for
    ``lockout`` seconds (even the right password is refused meanwhile); a right one clears the count.
    At most :data:`MAX_TRACKED` clients are remembered, however many addresses a guesser uses."""

    attempts: int
    lockout: float
    _failures: dict[str, int] = field(default_factory=dict)
    _locked_until: dict[str, float] = field(default_factory=dict)

    def locked_for(self, client: str) -> float:
        """Seconds the client is still locked out (0 when it may try)."""
        until = self._locked_until.get(client)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._locked_until[client]
            return 0.0
        return left

    def failed(self, client: str) -> float:
        """Count a wrong password; the lock-out it starts, in seconds (0 when none)."""
        count = self._failures.pop(client, 0) + 1  # popped: re-inserted as the newest
        if count < self.attempts:
            self._failures[client] = count
            if len(self._failures) > MAX_TRACKED:  # bounded: forget the oldest counts first
                del self._failures[next(iter(self._failures))]
            return 0.0
        self._locked_until.pop(client, None)
        self._locked_until[client] = time.monotonic() + self.lockout
        if len(self._locked_until) > MAX_TRACKED:  # bounded: forget the oldest locks first
            del self._locked_until[next(iter(self._locked_until))]
        return self.lockout

    def succeeded(self, client: str) -> None:
        """Forget the client's wrong passwords."""
        self._failures.pop(client, None)


class HostGuard(tornado.routing.Matcher):
    """Matches requests for a host name the app does not answer to (see
    :meth:`workbench.config.Settings.allows_host`; ``origins`` are Bokeh's websocket origins, whose
    names browsers use to reach the app), so that :class:`HostRefusedHandler` answers them first."""

    def __init__(self, origins: Sequence[str]) -> None:
        self.names = {origin.rsplit(":", 1)[0].strip("[]").lower() for origin in origins}  # host:port
        self.settings = get_settings()

    def match(self, request: Any) -> dict[str, Any] | None:
        """``{}`` (handle it: refuse) for a name not allowed, else ``None``."""
        if request.host_name.lower().rstrip(".") in self.names or self.settings.allows_host(request.host):
            return None
        return {}


class HostRefusedHandler(tornado.web.RequestHandler):
    """403 for a request :class:`HostGuard` matched."""

    def prepare(self) -> None:
        """Refuse before any route of Bokeh or Panel runs."""
        _log.warning("review app: refused a request for host %r (not an allowed name)", self.request.host)
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"Host {self.request.host!r} is not a name this app answers to: open it by its address or "
                    "localhost, or start it with --allow-origin NAME (or WORKBENCH_ALLOWED_HOSTS).\n")


class SignInHandler(BasicLoginHandler):
    """Panel's sign-in page and form, with the password from a file, throttling and safe cookies."""

    password_file: str = ""
    throttle: SignInThrottle
    #: Wrong passwords per name (from any address), :data:`ACCOUNT_FACTOR` times as many allowed.
    account_throttle: SignInThrottle
    #: Behind a reverse proxy (``--use-xheaders``): the client is the proxy's X-Forwarded-For entry.
    behind_proxy: bool = False

    def _client(self) -> str:
        """The client's address: behind the proxy, the last ``X-Forwarded-For`` entry (the documented
        proxy sets it), never ``X-Real-Ip`` (Tornado prefers it, and a client may send its own)."""
        if self.behind_proxy:
            forwarded = self.request.headers.get("X-Forwarded-For", "")
            last = forwarded.split(",")[-1].strip()
            if last:
                return last
            context = getattr(self.request.connection, "context", None)  # the proxy's own address
            return str(getattr(context, "_orig_remote_ip", None) or "unknown")
        return self.request.remote_ip or "unknown"

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        """Every cookie of the sign-in: not sent by other sites' requests, only over TLS when served so."""
        kwargs.setdefault("samesite", "Lax")
        if self.request.protocol == "https":
            kwargs["secure"] = True
        super().set_cookie(name, value, *args, **kwargs)

    def _validate(self, username: str, password: str) -> bool:
        with open(self.password_file, encoding="utf-8") as handle:
            expected = json.load(handle)
        return bool(username) and hmac.compare_digest(password.encode(), str(expected).encode())

    def _refuse(self, status: int, message: str, retry_after: float | None = None) -> None:
        self.set_status(status)
        if retry_after is not None:
            self.set_header("Retry-After", str(int(retry_after + 0.999)))
        self.finish(self._login_template.render(login_endpoint=self._login_endpoint, errormessage=message,
                                                PANEL_CDN=""))

    def post(self) -> None:
        """Check the password, unless this client is locked out; lock it out after too many wrong ones."""
        client = self._client()
        username = self.get_argument("username", "")
        account = "name:" + username[:200]
        locked = max(self.throttle.locked_for(client), self.account_throttle.locked_for(account))
        if locked:
            _log.warning("review sign-in refused for %r from %s: locked out for %.0f s more", username, client, locked)
            self._refuse(429, f"Too many wrong passwords from your address or for this name: try again in {int(locked + 0.999)} "
                              "seconds.", retry_after=locked)
            return
        if self._validate(username, self.get_argument("password", "")):
            self.throttle.succeeded(client)
            self.account_throttle.succeeded(account)
            _log.info("review sign-in: %r from %s", username, client)
            self.set_current_user(username)
            self.redirect(self._next_url())
            return
        lockout = max(self.throttle.failed(client), self.account_throttle.failed(account))
        if lockout:
            _log.warning("review sign-in: %d wrong passwords in a row from %s (last as %r): locked out for %.0f s",
                         self.throttle.attempts, client, username, lockout)
            self._refuse(429, f"Too many wrong passwords from your address or for this name: try again in {int(lockout + 0.999)} "
                              "seconds.", retry_after=lockout)
            return
        _log.warning("review sign-in: wrong password for %r from %s", username, client)
        self.redirect(self.request.uri + "?error=" + tornado.escape.url_escape("Invalid username or password!"))

    def _next_url(self) -> str:
        from panel.auth import _validate_next_url
        from panel.io.state import state

        return _validate_next_url(self.get_cookie("next_url", state.base_url)) or "/"


class SignIn(BasicAuthProvider):
    """Panel's basic authentication with :class:`SignInHandler` as its sign-in page."""

    def __init__(self, password_file: str, login_template: str | None, throttle: SignInThrottle,
                 behind_proxy: bool = False) -> None:
        self._password_file = password_file
        self._throttle = throttle
        self._account_throttle = SignInThrottle(throttle.attempts * ACCOUNT_FACTOR, throttle.lockout)
        self._behind_proxy = behind_proxy
        self._handler: type[SignInHandler] | None = None
        super().__init__(login_template=login_template)  # checks login_handler: set up what it needs first

    @property
    def login_handler(self) -> type[SignInHandler]:
        """The sign-in page, bound to this provider's password file, template and throttle."""
        if self._handler is None:
            self._handler = type("BoundSignInHandler", (SignInHandler,), {
                "_login_endpoint": self._login_endpoint, "_login_template": self._login_template,
                "password_file": self._password_file, "throttle": self._throttle,
                "account_throttle": self._account_throttle, "behind_proxy": self._behind_proxy,
            })
        return self._handler


class ReviewServe(Serve):
    """``panel serve`` with the review app's component route and team sign-in (module docstring)."""

    args = (
        *Serve.args,
        ("--sign-in-password-file", Argument(metavar="FILE", type=str, default=None,
                                             help="Team sign-in: a JSON string, the password (any name).")),
        ("--sign-in-template", Argument(metavar="FILE", type=str, default=None,
                                        help="The sign-in page (a Jinja2 template as Panel's login page).")),
        ("--review-model", Argument(metavar="URI", type=str, default=None,
                                    help="The model /review shows when its URL names none.")),
    )

    def customize_kwargs(self, args: argparse.Namespace, server_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Panel's server settings, with the narrowed component route and the team sign-in."""
        kwargs = super().customize_kwargs(args, server_kwargs)
        kwargs["extra_patterns"] = [
            (pattern[0], ReviewComponentHandler, *pattern[2:]) if pattern[1] is ComponentResourceHandler else pattern
            for pattern in kwargs.get("extra_patterns", [])
        ]
        if args.sign_in_password_file:
            settings = get_settings()
            template = args.sign_in_template
            if template is None:  # Panel's own page loads its logo from a CDN: the offline one, beside the password
                page = Path(args.sign_in_password_file).with_name("login.html")
                page.write_text(LOGIN_PAGE)
                template = str(page)
            kwargs["auth_provider"] = SignIn(
                args.sign_in_password_file, template,
                SignInThrottle(settings.sign_in_attempts, settings.sign_in_lockout),
                behind_proxy=bool(args.use_xheaders),
            )
        return kwargs

    def customize_server(self, server: Any) -> Any:
        """Refuse requests for host names the app does not answer to, before any other route."""
        app = server._tornado
        app.default_router.rules.insert(0, tornado.routing.Rule(HostGuard(sorted(app.websocket_origins)),
                                                                HostRefusedHandler))
        return server


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``panel serve`` arguments (and the two sign-in ones) and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m workbench.widgets.app.server",
                                     description="panel serve, as workbench review runs it")
    command = ReviewServe(parser=parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if not args.files:
        args.files = [str(APP_FILE)]
    if args.review_model:
        os.environ[DEFAULT_MODEL_ENV] = args.review_model  # the app runs in this process and reads it
    command.invoke(args)


if __name__ == "__main__":
    main()
