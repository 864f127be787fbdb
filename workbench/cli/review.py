"""``workbench review``: the Panel review app on the workspace in effect.

The core never imports Panel (nor the widgets), so the app runs in a child process: ``python -m
workbench.widgets.app.server`` (``panel serve`` with the review app's hardening, on the review app),
with the workspace passed through the environment (as ``workbench lab`` does for JupyterLab).

Bound to loopback (the default), only this machine reaches it. Binding any other address is team
mode: colleagues on the network reach it, so it refuses to start without a password, and then
serves a sign-in page (a signed ``SameSite`` cookie, ``Secure`` over TLS; wrong passwords locked out
per client after ``WORKBENCH_SIGN_IN_ATTEMPTS`` tries for ``WORKBENCH_SIGN_IN_LOCKOUT`` seconds). The
password comes from ``WORKBENCH_REVIEW_PASSWORD`` or a prompt and is handed to the server in a file
only this user can read, removed when the app stops; the cookie secret from
``WORKBENCH_REVIEW_COOKIE_SECRET`` (else a new one each start, which signs everyone out on restart).
``--certfile``/``--keyfile`` serve it over HTTPS; ``--behind-proxy`` trusts a reverse proxy's
``X-Forwarded-*`` headers (the client's address for throttling, HTTPS for cookies).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import click

from workbench._private import write_private
from workbench.cli.apps import _front_end_env
from workbench.errors import ConfigurationError, MissingDependencyError

__all__ = ["COMMANDS", "ReviewServer", "review"]

PASSWORD_ENV = "WORKBENCH_REVIEW_PASSWORD"
COOKIE_SECRET_ENV = "WORKBENCH_REVIEW_COOKIE_SECRET"
MIN_PASSWORD_LENGTH = 8


def is_loopback(address: str) -> bool:
    """True for addresses only this machine can reach (``127.0.0.1``, ``::1``, ``localhost``)."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


@dataclass(frozen=True)
class ReviewServer:
    """How ``panel serve`` is started: where it listens, who may connect, and how they sign in.

    ``password`` set means basic authentication (team mode); ``origins`` are the host[:port] values
    browsers may use to reach it (Bokeh refuses websocket connections from any other page).
    """

    port: int
    address: str
    origins: tuple[str, ...]
    password: str | None = field(default=None, repr=False)  # secrets: never in a repr
    cookie_secret: str | None = field(default=None, repr=False)
    default_model: str | None = None
    open_browser: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    #: TLS certificate and private key files (PEM): served over HTTPS when both are given.
    certfile: str | None = None
    keyfile: str | None = None
    #: Trust ``X-Forwarded-For``/``X-Forwarded-Proto`` from a reverse proxy in front.
    behind_proxy: bool = False

    def __post_init__(self) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigurationError("HTTPS needs both --certfile and --keyfile (PEM files): give both or neither")

    @property
    def tls(self) -> bool:
        """Whether the app is served over HTTPS."""
        return self.certfile is not None

    @property
    def team(self) -> bool:
        """Whether other machines can reach it (and authentication is on)."""
        return self.password is not None

    @property
    def url(self) -> str:
        """Where to open the app."""
        host = "127.0.0.1" if self.address in ("0.0.0.0", "::") else self.address
        host = f"[{host}]" if ":" in host else host
        query = f"?model={self.default_model}" if self.default_model else ""
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/review{query}"

    def command(self, run_dir: Path | None) -> list[str]:
        """The ``panel serve`` command line (secrets never appear on it: ``ps`` shows it to everyone)."""
        # A child process, named by module: the core never imports the UI (the app file, its sign-in
        # page and how it learns the default model are the server module's business).
        args = [sys.executable, "-m", "workbench.widgets.app.server", "--port", str(self.port),
                "--address", self.address, "--index", "review"]
        if self.default_model:
            args += ["--review-model", self.default_model]
        for origin in self.origins:
            args += ["--allow-websocket-origin", origin]
        if self.team:
            if run_dir is None:
                raise ConfigurationError("team mode needs a private folder for the sign-in files")
            args += ["--sign-in-password-file", str(run_dir / "credentials.json")]
        if self.certfile and self.keyfile:
            args += ["--ssl-certfile", self.certfile, "--ssl-keyfile", self.keyfile]
        if self.behind_proxy:
            args.append("--use-xheaders")
        if self.open_browser:
            args.append("--show")
        return args

    def environment(self) -> dict[str, str]:
        """The child's environment: the workspace, Panel offline, the cookie secret."""
        env = _front_end_env()
        env.update(self.extra_env)
        if self.cookie_secret:
            env["PANEL_COOKIE_SECRET"] = self.cookie_secret
        # Secrets meant for this command only: the app itself never needs them.
        env.pop(PASSWORD_ENV, None)
        env.pop(COOKIE_SECRET_ENV, None)
        return env

    def write_sign_in(self, run_dir: Path) -> None:
        """The password file (JSON string: any user name with this password)."""
        write_private(run_dir / "credentials.json", json.dumps(self.password))


def _origins(address: str, port: int, extra: Sequence[str]) -> tuple[str, ...]:
    hosts = {"localhost", "127.0.0.1"}
    if address not in ("0.0.0.0", "::"):
        hosts.add(f"[{address}]" if ":" in address else address)
    if not is_loopback(address):
        hostname = socket.gethostname()
        hosts |= {hostname, socket.getfqdn()}
        try:
            hosts |= set(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass
    found = [f"{h}:{port}" for h in sorted(hosts)]
    found += [o if ":" in o.rsplit("]", 1)[-1] else f"{o}:{port}" for o in extra]
    return tuple(dict.fromkeys(found))


def _team_password(address: str) -> str:
    password = os.environ.get(PASSWORD_ENV, "")
    if not password and sys.stdin.isatty():
        password = click.prompt(f"Password colleagues will sign in with at {address}", hide_input=True,
                                confirmation_prompt=True)
    if not password:
        raise ConfigurationError(
            f"binding {address} makes the review app reachable from other machines, so it needs a password: "
            f"set {PASSWORD_ENV} (at least {MIN_PASSWORD_LENGTH} characters) or start it in a terminal to be "
            f"asked; or keep it on this machine with --address 127.0.0.1"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigurationError(
            f"the review password must have at least {MIN_PASSWORD_LENGTH} characters: choose a longer one"
        )
    return password


def _serve(server: ReviewServer) -> int:
    """Run ``panel serve`` until it exits; stop it when this process is asked to stop."""
    run_dir = Path(tempfile.mkdtemp(prefix="workbench-review-")) if server.team else None  # 0700
    try:
        if run_dir is not None:
            server.write_sign_in(run_dir)
        proc = subprocess.Popen(server.command(run_dir), env=server.environment())

        def forward(signum: int, frame: FrameType | None) -> None:
            if proc.poll() is None:
                proc.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            while True:
                try:
                    return proc.wait()
                except KeyboardInterrupt:  # Ctrl-C reached both; wait for panel to finish
                    continue
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)


@click.command()
@click.option("--port", type=int, default=5006, show_default=True, help="Port to listen on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to bind. Loopback keeps the app on this machine; any other address is team "
                   f"mode and requires a password ({PASSWORD_ENV} or a prompt).")
@click.option("--team", is_flag=True,
              help="Team mode for a demo: bind every address (0.0.0.0, unless --address names another) "
                   f"with sign-in required ({PASSWORD_ENV} or a prompt).")
@click.option("--model", help="Open this registered model's review (the default page).")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="HOST[:PORT]",
              help="Another host name browsers use to reach the app (e.g. behind a proxy); repeatable.")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="TLS certificate (PEM) to serve over HTTPS; with --keyfile.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Private key (PEM) of --certfile.")
@click.option("--behind-proxy", is_flag=True,
              help="Behind a reverse proxy: trust its X-Forwarded-For/-Proto headers (client address, HTTPS).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser window.")
def review(port: int, address: str, team: bool, model: str | None, allow_origins: tuple[str, ...],
           certfile: str | None, keyfile: str | None, behind_proxy: bool, no_browser: bool) -> None:
    """Serve the review app: runs, models, packaging, deployments, drift, explanations.

    Everything is served from this machine (no CDN, no web fonts), on the workspace in effect.
    """
    if importlib.util.find_spec("panel") is None:
        raise MissingDependencyError("workbench review", "panel", extra="ui")
    if team and is_loopback(address):
        address = "0.0.0.0"
    team = not is_loopback(address)
    server = ReviewServer(
        port=port,
        address=address,
        origins=_origins(address, port, allow_origins),
        password=_team_password(address) if team else None,
        cookie_secret=(os.environ.get(COOKIE_SECRET_ENV) or secrets.token_urlsafe(32)) if team else None,
        default_model=model,
        open_browser=not no_browser,
        certfile=str(Path(certfile).resolve()) if certfile else None,
        keyfile=str(Path(keyfile).resolve()) if keyfile else None,
        behind_proxy=behind_proxy,
    )
    click.echo(f"Workbench review at {server.url}")
    if team:
        plain = "over plain HTTP: give --certfile/--keyfile or a proxy on untrusted networks"
        how = "over HTTPS" if server.tls else ("behind your proxy" if behind_proxy else plain)
        click.echo(f"Team mode: reachable from other machines at port {port} {how}; colleagues sign in with any "
                   "name and the password.")
    sys.exit(_serve(server))


COMMANDS = [review]
