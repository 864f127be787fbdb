"""Arm-selection policies for adaptive routing: which version answers the next request.

A policy chooses among N named arms (the router's are ``champion`` and ``challenger``), learns from
rewards fed back later, and says what share of requests each arm gets now. Two strategies:

- :class:`ThompsonSampling`: each arm's reward rate has a Beta posterior, ``Beta(1 + S, 1 + F)``;
  a request goes to the arm whose posterior draw is highest, so an arm's share is the probability
  that it is the best one. Rewards are numbers in ``[0, 1]``: a reward ``r`` adds ``r`` to the
  arm's successes ``S`` and ``1 - r`` to its failures ``F`` (the fractional update, which keeps the
  posterior mean equal to the mean reward; a 0/1 reward is the usual Bernoulli update). A reward
  outside ``[0, 1]`` is refused: scale it into that range before feeding it back.
- :class:`EpsilonGreedy`: with probability ``epsilon`` a request goes to an arm chosen uniformly
  (exploring), otherwise to the arm with the best mean reward so far (``(S + 1) / (n + 2)``, so an
  arm without rewards starts at 0.5; ties share equally).

Both keep every arm's share at or above a floor while they explore, so a version that had bad luck
early still gets requests and can recover: ``min_share`` for Thompson sampling (mixed in as uniform
exploration), ``epsilon / N`` for epsilon-greedy (``epsilon`` must be above 0).

A request key makes routing sticky: :meth:`BanditPolicy.choose` with a key hashes it to a fixed
point in ``[0, 1)`` and picks the arm whose slice of the cumulative shares holds it, so the same key
keeps reaching the same arm as long as the shares hold (a share moving across the point moves the
key, as it must for the shares to be what they say).

Everything is seeded (``random.Random(seed)``) and pure Python. Example::

    policy = ThompsonSampling(["champion", "challenger"], seed=7)
    arm = policy.choose(None)          # or policy.choose("customer-42") for a sticky choice
    policy.reward(arm, 1.0)
    policy.shares()                    # {'champion': 0.33, 'challenger': 0.67}
"""

from __future__ import annotations

import hashlib
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidInputError

__all__ = ["SHARE_STEP", "STICKY_HEADER", "STRATEGIES", "ArmShare", "ArmStats", "BanditPolicy", "BanditSnapshot",
           "EpsilonGreedy", "ShareChange", "ThompsonSampling", "make_policy", "sticky_point"]

#: The strategies :func:`make_policy` knows.
STRATEGIES = ("thompson", "epsilon_greedy")
#: A share change is worth telling (a router records it, the audit trail gets it) when some arm's
#: share moved by at least this much since the last one told: 5 percentage points.
SHARE_STEP = 0.05
#: The request header whose value makes the router's choice sticky (the same key, the same version).
STICKY_HEADER = "x-workbench-key"
#: Cells of the grid on which Thompson sampling's shares are integrated.
_GRID = 1024


@dataclass(frozen=True)
class ArmStats:
    """What one arm has earned: how many rewards came back and their sum, and how often it was chosen."""

    rewards: int = 0
    reward_sum: float = 0.0
    chosen: int = 0

    @property
    def mean(self) -> float:
        """Mean reward with one success and one failure of prior (0.5 before any reward)."""
        return (self.reward_sum + 1.0) / (self.rewards + 2.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rewards": self.rewards, "reward_sum": self.reward_sum, "chosen": self.chosen, "mean": self.mean}


def sticky_point(key: str) -> float:
    """A stable point in ``[0, 1)`` for a request key (the same on every machine and run)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class BanditPolicy(ABC):
    """Chooses among ``arms`` and learns from rewards in ``[0, 1]``; see the module docstring."""

    strategy: str = ""

    def __init__(self, arms: Sequence[str], *, seed: int = 0) -> None:
        names = [str(a) for a in arms]
        if len(names) < 2 or len(set(names)) != len(names):
            raise InvalidInputError(f"a bandit needs two or more distinct arms, not {names!r}")
        self.arms: tuple[str, ...] = tuple(names)
        self.seed = seed
        self._rng = random.Random(seed)
        self._stats: dict[str, ArmStats] = {a: ArmStats() for a in self.arms}
        self._shares: dict[str, float] | None = None

    # -- what a strategy provides --------------------------------------------------------------

    @abstractmethod
    def _pick(self) -> str:
        """One arm for a request without a key (uses ``self._rng``)."""

    @abstractmethod
    def _compute_shares(self) -> dict[str, float]:
        """The probability each arm is chosen now."""

    @property
    @abstractmethod
    def floor(self) -> float:
        """The smallest share any arm can have while the policy explores."""

    # -- the policy ------------------------------------------------------------------------------

    def choose(self, key: str | None = None) -> str:
        """The arm for one request; with ``key``, the same arm for the same key while shares hold."""
        if key is None:
            arm = self._pick()
        else:
            point = sticky_point(key)
            arm = self.arms[-1]
            total = 0.0
            for name, share in self.shares().items():
                total += share
                if point < total:
                    arm = name
                    break
        stats = self._stats[arm]
        self._stats[arm] = ArmStats(stats.rewards, stats.reward_sum, stats.chosen + 1)
        return arm

    def reward(self, arm: str, value: float) -> None:
        """Feed back one reward in ``[0, 1]`` for a request ``arm`` answered."""
        if arm not in self._stats:
            raise InvalidInputError(f"{arm!r} is not an arm of this bandit; its arms are {list(self.arms)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise InvalidInputError(f"a bandit reward is a number from 0 to 1, not {value!r}: scale it first")
        stats = self._stats[arm]
        self._stats[arm] = ArmStats(stats.rewards + 1, stats.reward_sum + float(value), stats.chosen)
        self._shares = None

    def shares(self) -> dict[str, float]:
        """The current probability that a request (without a key) goes to each arm; sums to 1."""
        if self._shares is None:
            self._shares = self._compute_shares()
        return dict(self._shares)

    def stats(self) -> dict[str, ArmStats]:
        """Each arm's rewards so far."""
        return dict(self._stats)

    def restore(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Take over rewards counted before (``{arm: ArmStats.to_dict()}``); unknown arms are ignored."""
        for arm, data in stats.items():
            if arm in self._stats:
                self._stats[arm] = ArmStats(int(data.get("rewards", 0)), float(data.get("reward_sum", 0.0)),
                                            int(data.get("chosen", 0)))
        self._shares = None


class ThompsonSampling(BanditPolicy):
    """Thompson sampling over Beta posteriors, with each arm's share kept at ``min_share`` or more.

    A request explores (an arm chosen uniformly) with probability ``min_share * N``, otherwise goes
    to the arm with the highest posterior draw. Shares are that probability computed, not sampled
    (numerical integration of the posteriors), so the same rewards always give the same shares.
    """

    strategy = "thompson"

    def __init__(self, arms: Sequence[str], *, seed: int = 0, min_share: float = 0.02) -> None:
        super().__init__(arms, seed=seed)
        if not 0.0 < min_share * len(self.arms) < 1.0:
            raise InvalidInputError(f"min_share must be above 0 and below 1/{len(self.arms)}, not {min_share}")
        self.min_share = min_share

    @property
    def floor(self) -> float:
        """``min_share``."""
        return self.min_share

    def _draw(self, rng: random.Random) -> str:
        best, best_value = self.arms[0], -1.0
        for arm in self.arms:
            s = self._stats[arm]
            value = rng.betavariate(1.0 + s.reward_sum, 1.0 + s.rewards - s.reward_sum)
            if value > best_value:
                best, best_value = arm, value
        return best

    def _pick(self) -> str:
        if self._rng.random() < self.min_share * len(self.arms):
            return self._rng.choice(self.arms)
        return self._draw(self._rng)

    def _compute_shares(self) -> dict[str, float]:
        # P(arm i has the highest rate) = integral of f_i(x) * prod_{j != i} F_j(x) dx, by the midpoint
        # rule on a fixed grid: deterministic, and fast enough to recompute after every feedback.
        # The grid spans only where some posterior has mass (8 standard deviations around each mean).
        low, high = 1.0, 0.0
        for arm in self.arms:
            s = self._stats[arm]
            a, b = 1.0 + s.reward_sum, 1.0 + s.rewards - s.reward_sum
            mean, sd = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
            low, high = min(low, mean - 8 * sd), max(high, mean + 8 * sd)
        low, high = max(low, 0.0), min(high, 1.0)
        step = (high - low) / _GRID
        xs = [low + (k + 0.5) * step for k in range(_GRID)]
        logs = [math.log(x) for x in xs]
        logs1 = [math.log1p(-x) for x in xs]
        densities: dict[str, list[float]] = {}
        cdfs: dict[str, list[float]] = {}
        for arm in self.arms:
            s = self._stats[arm]
            a, b = s.reward_sum, s.rewards - s.reward_sum  # Beta(1 + a, 1 + b)
            log_pdf = [a * lx + b * l1 for lx, l1 in zip(logs, logs1, strict=True)]
            top = max(log_pdf)
            pdf = [math.exp(v - top) for v in log_pdf]
            total = sum(pdf)
            pdf = [v / total for v in pdf]  # probability mass of each cell
            cdf, running = [], 0.0
            for mass in pdf:
                cdf.append(running + mass / 2)  # the CDF at the cell's midpoint
                running += mass
            densities[arm], cdfs[arm] = pdf, cdf
        wins = {}
        for arm in self.arms:
            others = [cdfs[o] for o in self.arms if o != arm]
            total = 0.0
            for k, mass in enumerate(densities[arm]):
                if mass > 1e-15:
                    p = mass
                    for cdf in others:
                        p *= cdf[k]
                    total += p
            wins[arm] = total
        norm = sum(wins.values()) or 1.0
        explore = self.min_share * len(self.arms)
        return {a: self.min_share + (1.0 - explore) * wins[a] / norm for a in self.arms}


class EpsilonGreedy(BanditPolicy):
    """Epsilon-greedy: explore uniformly with probability ``epsilon``, else take the best mean reward.

    ``epsilon`` is above 0, so every arm keeps at least ``epsilon / N`` of requests.
    """

    strategy = "epsilon_greedy"

    def __init__(self, arms: Sequence[str], *, seed: int = 0, epsilon: float = 0.1) -> None:
        super().__init__(arms, seed=seed)
        if not 0.0 < epsilon <= 1.0 or math.isnan(epsilon):
            raise InvalidInputError(f"epsilon must be above 0 and at most 1 (0.1 is usual), not {epsilon}")
        self.epsilon = epsilon

    @property
    def floor(self) -> float:
        """``epsilon / N``."""
        return self.epsilon / len(self.arms)

    def _leaders(self) -> list[str]:
        best = max(self._stats[a].mean for a in self.arms)
        return [a for a in self.arms if self._stats[a].mean == best]

    def _pick(self) -> str:
        if self._rng.random() < self.epsilon:
            return self._rng.choice(self.arms)
        return self._rng.choice(self._leaders())

    def _compute_shares(self) -> dict[str, float]:
        leaders = self._leaders()
        return {a: self.floor + ((1.0 - self.epsilon) / len(leaders) if a in leaders else 0.0) for a in self.arms}


def make_policy(strategy: str, arms: Sequence[str], *, seed: int = 0, epsilon: float = 0.1) -> BanditPolicy:
    """The policy for ``strategy`` (``thompson`` or ``epsilon_greedy``) over ``arms``."""
    if strategy == "thompson":
        return ThompsonSampling(arms, seed=seed)
    if strategy == "epsilon_greedy":
        return EpsilonGreedy(arms, seed=seed, epsilon=epsilon)
    raise InvalidInputError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")


@dataclass(frozen=True)
class ArmShare:
    """One arm of a live bandit: the version behind it, its share now, and its rewards so far."""

    arm: str
    version: str
    share: float
    rewards: int
    reward_sum: float
    chosen: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"arm": self.arm, "version": self.version, "share": self.share, "rewards": self.rewards,
                "reward_sum": self.reward_sum, "chosen": self.chosen}


@dataclass(frozen=True)
class ShareChange:
    """A move of the shares by :data:`SHARE_STEP` or more, as the router saw it."""

    #: Position in the router's sequence of changes (``run`` names the sequence).
    seq: int
    #: When the shares moved (UTC, ISO 8601).
    ts: str
    shares: Mapping[str, float]
    #: Rewards counted per arm at that moment.
    rewards: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"seq": self.seq, "ts": self.ts, "shares": dict(self.shares), "rewards": dict(self.rewards)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShareChange:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["seq"]), str(data["ts"]), {str(k): float(v) for k, v in data["shares"].items()},
                   {str(k): int(v) for k, v in (data.get("rewards") or {}).items()})


@dataclass(frozen=True)
class BanditSnapshot:
    """A router's bandit as it is now (its ``bandit`` block in ``GET /workbench/router``)."""

    strategy: str
    epsilon: float
    #: The smallest share an arm can have while the bandit explores.
    floor: float
    arms: tuple[ArmShare, ...]
    #: Names this bandit's life (a new one starts when the versions change); ``changes`` are
    #: numbered within it, so a reader knows which it has already seen.
    run: str
    changes: tuple[ShareChange, ...] = ()

    @property
    def shares(self) -> dict[str, float]:
        """``{arm: share}``."""
        return {a.arm: a.share for a in self.arms}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"strategy": self.strategy, "epsilon": self.epsilon, "floor": self.floor,
                "arms": [a.to_dict() for a in self.arms], "run": self.run,
                "changes": [c.to_dict() for c in self.changes], "sticky_header": STICKY_HEADER}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BanditSnapshot:
        """Inverse of :meth:`to_dict`; a block that is not one raises InvalidInputError."""
        try:
            return cls(
                strategy=str(data["strategy"]), epsilon=float(data["epsilon"]), floor=float(data["floor"]),
                arms=tuple(ArmShare(str(a["arm"]), str(a["version"]), float(a["share"]), int(a["rewards"]),
                                    float(a["reward_sum"]), int(a["chosen"])) for a in data["arms"]),
                run=str(data["run"]),
                changes=tuple(ShareChange.from_dict(c) for c in data.get("changes") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"not a bandit state: {exc}") from exc
