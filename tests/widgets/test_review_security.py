"""``workbench review`` against a guessed password, a hostile URL and an open network, over HTTP.

Real ``workbench review`` processes: team sign-in throttled per client and logged, the right
password working again once the lock-out ends, cookies that other sites' requests do not carry
(and, over TLS with a certificate made here, only over TLS), and Panel's component route serving
Panel's own resources only, to signed-in users, with 4xx for every traversal form.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import start_review, stop_process

PASSWORD = "review-team-password"
LOCKOUT = 2.0


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, session_workspace) -> Iterator[tuple[str, Path]]:
    """``workbench review --team``: 3 wrong passwords lock a client out for 2 s; yields URL and log."""
    log = tmp_path_factory.mktemp("review-team") / "review.log"
    proc, url = start_review(log, "--team", env={"WORKBENCH_REVIEW_PASSWORD": PASSWORD,
                                                "WORKBENCH_SIGN_IN_ATTEMPTS": "3",
                                                "WORKBENCH_SIGN_IN_LOCKOUT": str(LOCKOUT)})
    try:
        yield url, log
    finally:
        stop_process(proc)


def _sign_in(client: httpx.Client, url: str, password: str) -> httpx.Response:
    return client.post(f"{url}/login", data={"username": "ana", "password": password}, follow_redirects=False)


def test_wrong_passwords_lock_a_client_out_then_the_right_one_works_again(team) -> None:
    url, log = team
    with httpx.Client() as client:
        for _ in range(2):
            wrong = _sign_in(client, url, "guessed-password")
            assert wrong.status_code == 302 and "error=Invalid" in wrong.headers["location"]
        locked = _sign_in(client, url, "guessed-password")  # the third in a row
        assert locked.status_code == 429
        assert "Too many wrong passwords" in locked.text and locked.headers["retry-after"] == "2"
        refused = _sign_in(client, url, PASSWORD)  # even the right password, while locked out
        assert refused.status_code == 429 and "user" not in refused.cookies
        assert "review sign-in: 3 wrong passwords in a row from 127.0.0.1" in log.read_text()
        time.sleep(LOCKOUT)  # the lock-out, as configured: then the right password signs in
        signed_in = _sign_in(client, url, PASSWORD)
        assert signed_in.status_code == 302 and "error" not in signed_in.headers["location"]
        first_page = client.get(f"{url}/review", follow_redirects=False, timeout=120)  # the app's imports
        assert first_page.status_code == 200


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def test_sign_in_cookies_are_same_site(team) -> None:
    url, _ = team
    with httpx.Client() as client:
        page = client.get(f"{url}/login", params={"next": "/review"})
        signed_in = _sign_in(client, url, PASSWORD)
    cookies = {**_set_cookies(page), **_set_cookies(signed_in)}
    assert {"next_url", "user", "id_token"} <= set(cookies)
    for name, header in cookies.items():
        assert "SameSite=Lax" in header, header
        assert "Secure" not in header  # plain HTTP: a Secure cookie would never come back
    assert "HttpOnly" in cookies["user"] and "HttpOnly" in cookies["id_token"]


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (the ``cryptography`` package)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def test_team_mode_over_tls_sets_secure_cookies(tmp_path: Path, session_workspace) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    proc, url = start_review(tmp_path / "review.log", "--team", "--certfile", str(certfile),
                             "--keyfile", str(keyfile), env={"WORKBENCH_REVIEW_PASSWORD": PASSWORD},
                             verify=str(certfile))
    try:
        assert url.startswith("https://")
        assert "Workbench review at https://" in (tmp_path / "review.log").read_text()
        with httpx.Client(verify=str(certfile)) as client:
            page = client.get(f"{url}/login", params={"next": "/review"})
            signed_in = _sign_in(client, url, PASSWORD)
            assert signed_in.status_code == 302
            first_page = client.get(f"{url}/review", follow_redirects=False, timeout=120)  # the app's imports
        assert first_page.status_code == 200
        cookies = {**_set_cookies(page), **_set_cookies(signed_in)}
        assert {"next_url", "user", "id_token"} <= set(cookies)
        for header in cookies.values():
            assert "Secure" in header and "SameSite=Lax" in header, header
        with pytest.raises(httpx.HTTPError):  # nothing is served over plain HTTP on that port
            httpx.get(url.replace("https://", "http://") + "/login", timeout=10)
    finally:
        stop_process(proc)


def test_https_needs_both_the_certificate_and_its_key(tmp_path: Path) -> None:
    import subprocess

    from support import WORKBENCH

    certfile, _ = _self_signed(tmp_path)
    done = subprocess.run([WORKBENCH, "review", "--no-browser", "--certfile", str(certfile)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "--certfile and --keyfile" in done.stderr


# Module paths Panel's component route imported, and forms that made it answer 500.
HOSTILE_COMPONENTS = [
    "this/Zen/__css__/a.css",  # importing `this` prints the Zen of Python into the server's output
    "antigravity/X/__css__/a.css",
    "os/path/_css/passwd",
    "..%2F..%2Fetc/x/y/z",
    "%2E%2E/x/_css/y",
    "/X/_css/a.css",
    "panel..x/A/_css/b",
    "panel/../../etc/passwd",
    "panel.widgets/Button/_stylesheets/..%2F..%2F..%2Fsetup.py",
    "panel.tests.conftest/X/_css/a.css",
]


def test_the_component_route_needs_sign_in_and_serves_panel_resources_only(team) -> None:
    url, log = team
    anonymous = httpx.get(f"{url}/components/panel.widgets/Button/_stylesheets/button.css",
                          follow_redirects=False)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["location"]
    with httpx.Client() as client:
        assert _sign_in(client, url, PASSWORD).status_code == 302
        for path in HOSTILE_COMPONENTS:
            response = client.get(f"{url}/components/{path}", follow_redirects=False)
            assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:300])
    assert "Beautiful is better than ugly" not in log.read_text()  # `this` was never imported


def test_the_component_route_on_loopback_refuses_other_modules(tmp_path: Path, session_workspace) -> None:
    proc, url = start_review(tmp_path / "review.log")
    try:
        for path in HOSTILE_COMPONENTS:
            response = httpx.get(f"{url}/components/{path}", follow_redirects=False)
            assert 400 <= response.status_code < 500, (path, response.status_code)
    finally:
        stop_process(proc)
    assert "Beautiful is better than ugly" not in (tmp_path / "review.log").read_text()


def test_every_team_route_needs_sign_in_but_the_static_files_and_the_sign_in_page(team) -> None:
    url, _ = team
    for path in ("review", "review?model=x", "review/metadata", "components/panel.theme.base/Design/_css/a.css"):
        response = httpx.get(f"{url}/{path}", follow_redirects=False)
        assert response.status_code == 302 and "/login?next=" in response.headers["location"], path
    assert httpx.get(f"{url}/review/ws", follow_redirects=False).status_code == 403
    # Deliberately public: the sign-in and sign-out pages and the JavaScript libraries (no data).
    for path in ("login", "logout", "static/js/bokeh.min.js", "static/extensions/panel/panel.min.js"):
        assert httpx.get(f"{url}/{path}", follow_redirects=False).status_code == 200, path


def test_behind_a_proxy_clients_are_told_apart_and_https_cookies_are_secure(tmp_path: Path, session_workspace) -> None:
    """--behind-proxy: the proxy's X-Forwarded-For names the client (each locked out on its own) and
    X-Forwarded-Proto: https makes the cookies Secure."""
    proc, url = start_review(tmp_path / "review.log", "--team", "--behind-proxy",
                             env={"WORKBENCH_REVIEW_PASSWORD": PASSWORD, "WORKBENCH_SIGN_IN_ATTEMPTS": "2",
                                  "WORKBENCH_SIGN_IN_LOCKOUT": "600"})
    try:
        def attempt(client_ip: str, password: str) -> httpx.Response:
            return httpx.post(f"{url}/login", data={"username": "bo", "password": password}, follow_redirects=False,
                              headers={"X-Forwarded-For": client_ip, "X-Forwarded-Proto": "https"})

        assert attempt("203.0.113.7", "guess-1").status_code == 302
        assert attempt("203.0.113.7", "guess-2").status_code == 429  # that client is locked out...
        assert attempt("203.0.113.7", PASSWORD).status_code == 429
        signed_in = attempt("198.51.100.9", PASSWORD)  # ...another one signs in
        assert signed_in.status_code == 302
        user = _set_cookies(signed_in)["user"]
        assert "Secure" in user and "SameSite=Lax" in user
        assert "from 203.0.113.7" in (tmp_path / "review.log").read_text()
    finally:
        stop_process(proc)


def test_a_rebound_host_name_is_refused_before_any_route(team) -> None:
    """DNS rebinding: a page on a name that now resolves to this machine gets 403, sign-in page
    and app alike; the address, localhost and the app's own names keep working."""
    url, log = team
    port = url.rsplit(":", 1)[1].split("/")[0]
    for path in ("/login", "/review", "/static/js/bokeh.min.js"):
        refused = httpx.get(f"{url}{path}", headers={"host": f"evil.example:{port}"}, follow_redirects=False)
        assert refused.status_code == 403, (path, refused.status_code)
        assert "evil.example" in refused.text and "--allow-origin" in refused.text
    assert "refused a request for host 'evil.example:" in log.read_text()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert httpx.get(f"{url}/login", headers={"host": host}).status_code == 200


def test_behind_the_proxy_a_spoofed_x_real_ip_gains_no_tries_and_names_are_throttled_too(
        tmp_path: Path, session_workspace) -> None:
    """The documented nginx block sets X-Forwarded-For to the client's address; X-Real-Ip is the
    client's own to send (Tornado preferred it): a new one per try must not reset the count. And a
    guesser with many addresses still meets the per-name lock-out."""
    from workbench.widgets.app.server import ACCOUNT_FACTOR

    proc, url = start_review(tmp_path / "review.log", "--team", "--behind-proxy",
                             env={"WORKBENCH_REVIEW_PASSWORD": PASSWORD, "WORKBENCH_SIGN_IN_ATTEMPTS": "2",
                                  "WORKBENCH_SIGN_IN_LOCKOUT": "600"})
    try:
        def attempt(name: str, client_ip: str, spoofed: str, password: str = "guess") -> int:
            return httpx.post(f"{url}/login", data={"username": name, "password": password}, follow_redirects=False,
                              headers={"X-Forwarded-For": client_ip, "X-Real-Ip": spoofed}).status_code

        assert attempt("ana", "203.0.113.7", "10.0.0.1") == 302
        assert attempt("ana", "203.0.113.7", "10.0.0.2") == 429  # the proxy's address counts, not X-Real-Ip
        assert attempt("ana", "203.0.113.7", "10.0.0.3", PASSWORD) == 429
        # One wrong password from each of many addresses: the name locks out after its own allowance.
        codes = [attempt("bo", f"198.51.100.{i}", "10.0.0.9") for i in range(2 * ACCOUNT_FACTOR + 1)]
        assert codes[:2 * ACCOUNT_FACTOR - 1] == [302] * (2 * ACCOUNT_FACTOR - 1) and codes[-1] == 429
        assert attempt("bo", "192.0.2.1", "10.0.0.9", PASSWORD) == 429  # that name, from a new address
        assert attempt("cy", "192.0.2.1", "10.0.0.9", PASSWORD) == 302  # another name signs in
    finally:
        stop_process(proc)


def test_the_failure_table_stays_bounded_whatever_addresses_a_guesser_uses() -> None:
    from workbench.widgets.app.server import MAX_TRACKED, SignInThrottle

    throttle = SignInThrottle(attempts=5, lockout=60)
    for i in range(MAX_TRACKED + 5000):
        throttle.failed(f"spoofed-{i}")
    assert len(throttle._failures) == MAX_TRACKED
    assert "spoofed-0" not in throttle._failures and f"spoofed-{MAX_TRACKED + 4999}" in throttle._failures
