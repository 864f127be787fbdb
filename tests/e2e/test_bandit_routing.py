"""Bandit routing end to end on the local target: a real router in front of two real model servers
(sharing one prediction log, as local deployments do), rewards fed back through the deployment's front
door, the shares moving, sticky keys, what `workbench traffic` shows, and the audit trail.

Docker and Swarm run the same router (tests/e2e/test_challenger.py, test_swarm.py run their
champion/challenger scenario); Kubernetes refuses a bandit (tests/core/test_kubernetes.py)."""

from __future__ import annotations

import uuid

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

import workbench as wb
from workbench.cli import main
from workbench.errors import InvalidInputError


def _ask(url: str, row: dict, key: str | None = None) -> tuple[str, str]:
    """(variant that answered, request id) of one request through the deployment's address."""
    headers = {"x-workbench-key": key} if key else {}
    response = httpx.post(f"{url}/invocations", json={"dataframe_records": [row]}, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.headers["x-workbench-variant"], response.headers["x-request-id"]


def test_a_bandit_challenger_takes_over_as_rewards_come_back(duel_versions, numeric_data) -> None:
    champion, challenger = duel_versions
    X, _ = numeric_data
    rows = X.to_dict(orient="records")
    name = f"bandit-{uuid.uuid4().hex[:5]}"
    wb.deploy(champion.uri, name=name)
    try:
        with pytest.raises(InvalidInputError, match="give share or strategy, not both"):
            wb.start_challenger(name, challenger.uri, share=0.2, strategy="thompson")
        dep = wb.start_challenger(name, challenger.uri, strategy="thompson")
        assert dict(dep.traffic) == {"mode": "bandit", "challenger_share": 0.1, "strategy": "thompson"}
        assert dep.shares == pytest.approx({"champion": 0.5, "challenger": 0.5}, abs=1e-6)

        answered = [_ask(dep.url, rows[i]) for i in range(60)]
        assert {variant for variant, _ in answered} == {"champion", "challenger"}
        # the challenger's answers earn 1, the champion's 0: fed back through the front door
        feedback = pd.DataFrame({"request_id": [rid for _, rid in answered],
                                 "reward": [1.0 if v == "challenger" else 0.0 for v, _ in answered]})
        report = wb.log_feedback(name, feedback)
        assert report.counts["recorded"] == len(answered)
        versions = {"champion": champion.version, "challenger": challenger.version}
        assert [r.model_version for r in report.results] == [versions[v] for v, _ in answered]

        live = wb.get_deployment(name)
        assert live.shares["challenger"] > 0.9 and live.shares["champion"] >= live.bandit.floor > 0
        arms = {a.arm: a for a in live.bandit.arms}
        assert arms["challenger"].rewards == sum(v == "challenger" for v, _ in answered)
        assert arms["champion"].reward_sum == 0
        later = [_ask(dep.url, rows[i])[0] for i in range(40)]
        assert later.count("challenger") >= 30
        # a sticky key keeps its version while the shares hold
        assert len({_ask(dep.url, rows[i], key="customer-7")[0] for i in range(8)}) == 1

        # feedback sent again changes nothing
        again = wb.log_feedback(name, feedback.head(5))
        assert again.counts["duplicate"] == 5
        assert {a.arm: a.rewards for a in wb.get_deployment(name).bandit.arms} == {a: arms[a].rewards for a in arms}

        # every share move is in the audit trail, once, however often the deployment is read
        moves = wb.audit_log(deployment=name, action="bandit_shares")
        assert len(moves) >= 1
        last = moves["details"].iloc[-1]
        assert last["shares"]["challenger"] == pytest.approx(live.shares["challenger"], abs=0.051)
        wb.get_deployment(name)
        wb.deployments()
        assert len(wb.audit_log(deployment=name, action="bandit_shares")) == len(moves)

        shown = CliRunner().invoke(main, ["traffic", name])
        assert shown.exit_code == 0, shown.output
        assert "bandit (thompson)" in shown.output
        assert f"challenger v{challenger.version}" in shown.output and "rewards" in shown.output

        # a strategy change keeps the rewards; the change itself is audited with its policy
        switched = wb.set_traffic(name, strategy="epsilon_greedy", epsilon=0.2)
        assert switched.shares == pytest.approx({"champion": 0.1, "challenger": 0.9})
        assert wb.audit_log(deployment=name, action="set_traffic")["details"].iloc[-1]["traffic"] == {
            "mode": "bandit", "challenger_share": 0.1, "strategy": "epsilon_greedy", "epsilon": 0.2}

        promoted = wb.promote(name)
        assert promoted.model_version == challenger.version and promoted.bandit is None
        assert promoted.shares == {"champion": 1.0}
    finally:
        wb.stop(name)
