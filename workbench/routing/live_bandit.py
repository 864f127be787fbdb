"""The router's live bandit: its policy over champion and challenger, the share changes it saw,
and their copy on disk.

The copy (``bandit-state.json`` beside the router's config) lets a restarted router, or one given
new routes with the same versions, carry on with the rewards counted so far. A share change of
:data:`~workbench.routing.bandit.SHARE_STEP` or more is numbered within the bandit's ``run`` and kept
(the last ``KEPT_CHANGES``) until a reader collects it: the deployment manager writes each one to
the audit trail when it reads the router (see :func:`workbench.deployment.manager.get_deployment`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import secrets
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.routing.bandit import SHARE_STEP, ArmShare, BanditPolicy, BanditSnapshot, ShareChange, make_policy

if TYPE_CHECKING:
    from workbench.routing.router import RouteTable

__all__ = ["ARMS", "KEPT_CHANGES", "LiveBandit"]

_log = logging.getLogger(__name__)
#: The arms of a router's bandit.
ARMS = ("champion", "challenger")
#: Share changes a router keeps for readers (the audit trail) to collect.
KEPT_CHANGES = 500
_STATE_EVERY = 1.0  # seconds between writes of the state when only reward counts moved


ARMS = ("champion", "challenger")


class LiveBandit:
    """The router's bandit over champion and challenger: the policy, the share changes it saw, and
    their copy on disk (``state_path``) so a restart or a route change with the same versions
    carries on with the rewards counted so far."""

    def __init__(self, table: RouteTable, state_path: Path | None) -> None:
        self.table = table
        self.state_path = state_path
        self.key = self.key_of(table)
        self.run = secrets.token_hex(6)
        self.seq = 0
        self.changes: deque[ShareChange] = deque(maxlen=KEPT_CHANGES)
        saved = self._read()
        if saved is not None:
            self.run, self.seq = str(saved["run"]), int(saved["seq"])
            self.changes.extend(ShareChange.from_dict(c) for c in saved.get("changes") or ())
        self.policy = self._policy(table)
        if saved is not None:
            self.policy.restore(saved.get("stats") or {})
        self.told = self.policy.shares()
        self.saved_at = 0.0
        self.dirty = False

    @staticmethod
    def key_of(table: RouteTable) -> str:
        """What names the arms: a route table with the same key keeps the rewards."""
        return json.dumps([list(table.champion), table.champion_version, list(table.challenger),
                           table.challenger_version])

    def _policy(self, table: RouteTable) -> BanditPolicy:
        return make_policy(table.strategy, ARMS, seed=int(self.run, 16), epsilon=table.epsilon)

    def retune(self, table: RouteTable) -> None:
        """Same versions, maybe another strategy: the rewards carry over."""
        stats = {arm: s.to_dict() for arm, s in self.policy.stats().items()}
        self.table = table
        self.policy = self._policy(table)
        self.policy.restore(stats)
        self.settle(force_save=True)

    def _read(self) -> dict[str, Any] | None:
        if self.state_path is None or not self.state_path.exists():
            return None
        try:
            saved = json.loads(self.state_path.read_text())
        except (OSError, ValueError) as exc:
            _log.warning("bandit state %s not read (%s): starting afresh", self.state_path, exc)
            return None
        return saved if isinstance(saved, dict) and saved.get("key") == self.key else None

    def save(self) -> None:
        """Write the state now (atomically); a failure is logged, never raised to a request."""
        if self.state_path is None:
            return
        data = {"key": self.key, "run": self.run, "seq": self.seq,
                "stats": {arm: s.to_dict() for arm, s in self.policy.stats().items()},
                "changes": [c.to_dict() for c in self.changes]}
        try:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.state_path)
        except OSError as exc:
            _log.warning("bandit state not written to %s: %s", self.state_path, exc)
            return
        self.saved_at = time.monotonic()
        self.dirty = False

    def settle(self, *, force_save: bool = False) -> None:
        """After rewards: note a share change of :data:`SHARE_STEP` or more, and keep the state.
        A change is written at once (so a restart never numbers two changes alike); reward counts
        alone at most every ``_STATE_EVERY`` seconds."""
        shares = self.policy.shares()
        if max(abs(shares[a] - self.told.get(a, 0.0)) for a in ARMS) >= SHARE_STEP - 1e-12:
            self.seq += 1
            stats = self.policy.stats()
            self.changes.append(ShareChange(self.seq, _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                                            shares, {a: stats[a].rewards for a in ARMS}))
            self.told = shares
            force_save = True
        self.dirty = True
        if force_save or time.monotonic() - self.saved_at >= _STATE_EVERY:
            self.save()

    def snapshot(self) -> BanditSnapshot:
        """The bandit as ``GET /workbench/router`` shows it."""
        shares, stats = self.policy.shares(), self.policy.stats()
        versions = {"champion": self.table.champion_version, "challenger": self.table.challenger_version}
        return BanditSnapshot(
            strategy=self.table.strategy, epsilon=self.table.epsilon, floor=self.policy.floor,
            arms=tuple(ArmShare(a, versions[a], shares[a], stats[a].rewards, stats[a].reward_sum, stats[a].chosen)
                       for a in ARMS),
            run=self.run, changes=tuple(self.changes))
