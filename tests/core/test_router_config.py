"""Where the router reads its routes and its admin token from, and where it keeps its bandit state.

On Kubernetes the route table is a ConfigMap (a read-only mount) and the token a Secret (an
environment variable); the bandit's state goes to a writable folder of its own. A route change sent to
such a router is refused (409) and changes nothing, so every router replica keeps the same routes.
The read-only mount is a real one, in a mount namespace of the router's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import need
from starlette.testclient import TestClient

from workbench.errors import InvalidInputError
from workbench.routing.router import ROUTER_TOKEN_ENV, RouteTable, create_router, load_config
from workbench.serving.command import route_args

TOKEN = "from-the-secret"


def _wait_for(url: str, proc: subprocess.Popen[bytes], output: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/workbench/router", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.2)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_router_on_a_read_only_config_reads_its_token_from_the_environment_and_refuses_changes(
        registered_model, serve_shared, numeric_data, tmp_path: Path) -> None:
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    need(bool(unshare and mount) and os.geteuid() == 0,
         "a read-only bind mount in a mount namespace (unshare and mount, as root)")
    first, second = serve_shared(registered_model.uri), serve_shared(registered_model.uri)
    version = registered_model.version
    table = RouteTable(champion=(first.url,), challenger=(second.url,), mode="bandit",
                       champion_version=version, challenger_version=version + "-b")
    source, config_dir, state_dir = tmp_path / "configmap", tmp_path / "etc-router", tmp_path / "state"
    for folder in (source, config_dir, state_dir):
        folder.mkdir()
    (source / "router.json").write_text(json.dumps({"table": table.to_dict()}))  # no token in the file
    port = _free_port()
    args = [sys.executable, "-m", "workbench", *route_args(config_dir / "router.json", host="127.0.0.1", port=port,
                                                            state_dir=state_dir)]
    script = (f"mount --bind {source} {config_dir} && mount -o remount,ro,bind {config_dir} && exec "
              + " ".join(args))
    output = tmp_path / "router.out"
    with output.open("wb") as out:
        proc = subprocess.Popen([str(unshare), "--mount", "sh", "-c", script], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, ROUTER_TOKEN_ENV: TOKEN})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, proc, output)
        X, _ = numeric_data
        answer = httpx.post(url + "/invocations", json={"dataframe_split": X.head(1).to_dict("split")}, timeout=30)
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-request-id"]

        changed = {**table.to_dict(), "mode": "split", "challenger_share": 0.5}
        refused = httpx.put(url + "/workbench/router", json=changed, timeout=10)
        assert refused.status_code == 401  # the token guards the route still
        refused = httpx.put(url + "/workbench/router", json=changed, headers={"authorization": f"Bearer {TOKEN}"},
                            timeout=10)
        assert refused.status_code == 409, refused.text
        assert "cannot write" in refused.json()["error"] and "ConfigMap" in refused.json()["error"]
        assert httpx.get(url + "/workbench/router", timeout=10).json()["mode"] == "bandit"  # nothing changed

        # the bandit keeps its state in the writable folder given, not beside the read-only config
        feedback = httpx.post(f"{url}/v2/models/{registered_model.name}/feedback",
                              json={"request_id": request_id, "row": 0, "reward": 1.0}, timeout=30)
        assert feedback.status_code == 200, feedback.text
        assert sum(feedback.json()["bandit"]["rewarded"].values()) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    saved = json.loads((state_dir / "bandit-state.json").read_text())
    assert sum(s["rewards"] for s in saved["stats"].values()) == 1
    assert sorted(p.name for p in source.iterdir()) == ["router.json"]
    assert "Traceback" not in output.read_text()


def test_the_token_comes_from_the_file_first_and_never_lands_in_it_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = RouteTable(champion=("http://localhost:1",))
    with_token, without = tmp_path / "with.json", tmp_path / "without.json"
    with_token.write_text(json.dumps({"table": table.to_dict(), "token": "in-the-file"}))
    without.write_text(json.dumps({"table": table.to_dict()}))
    monkeypatch.setenv(ROUTER_TOKEN_ENV, TOKEN)
    assert load_config(with_token) == (table, "in-the-file")
    assert load_config(without) == (table, TOKEN)
    monkeypatch.delenv(ROUTER_TOKEN_ENV)
    assert load_config(without) == (table, "")  # no token anywhere: routes cannot be changed by PUT
    with pytest.raises(InvalidInputError, match="is not a router config"):
        (tmp_path / "bad.json").write_text("{}")
        load_config(tmp_path / "bad.json")

    # a writable config without a token: a change is kept, and the token from the environment is not written
    app = create_router(table, token=TOKEN, config_path=without, allowed_origins=(), state_dir=tmp_path / "state")
    with TestClient(app, base_url="http://127.0.0.1:9") as client:
        moved = {**table.to_dict(), "champion": ["http://localhost:2"]}
        assert client.put("/workbench/router", json=moved, headers={"authorization": "Bearer nope"}).status_code == 401
        done = client.put("/workbench/router", json=moved, headers={"authorization": f"Bearer {TOKEN}"})
        assert done.status_code == 200, done.text
    kept = json.loads(without.read_text())
    assert kept == {"table": RouteTable.from_dict(moved).to_dict()}
    assert TOKEN not in without.read_text()
    with TestClient(create_router(table, token="", config_path=None, allowed_origins=()),
                    base_url="http://127.0.0.1:9") as client:
        assert client.put("/workbench/router", json=moved, headers={"authorization": "Bearer "}).status_code == 401
