"""Arm-selection policies of the bandit router, tested as properties on seeded simulated streams.

The stream: two versions whose rewards are 0/1 with rates 0.45 (the champion) and 0.60 (the
challenger, better by 15 points). Each feedback event is one request routed by the policy and its
reward fed back. "Decided" means the better arm's share is at or above 80 % from that event to the
end of the stream."""

from __future__ import annotations

import random
import statistics

import pytest

from workbench.errors import InvalidInputError
from workbench.routing.bandit import EpsilonGreedy, ThompsonSampling, make_policy, sticky_point

RATES = {"champion": 0.45, "challenger": 0.60}
SEEDS = range(20)
STREAM = 1000
#: Feedback events within which the better arm must pass (and stay above) 80 %, on every seed.
WITHIN = 500
CHECK_EVERY = 5  # shares are read every few events, so decisions are known to this precision


def _stream(strategy: str, seed: int) -> tuple[int | None, float]:
    """(event from which the challenger's share stays >= 80 %, lowest share any arm had)."""
    policy = make_policy(strategy, list(RATES), seed=seed)
    world = random.Random(10_000 + seed)
    decided: int | None = None
    lowest = 1.0
    for event in range(1, STREAM + 1):
        arm = policy.choose(None)
        policy.reward(arm, 1.0 if world.random() < RATES[arm] else 0.0)
        if event % CHECK_EVERY == 0:
            shares = policy.shares()
            assert sum(shares.values()) == pytest.approx(1.0)
            lowest = min(lowest, *shares.values())
            if shares["challenger"] < 0.8:
                decided = None
            elif decided is None:
                decided = event
    return decided, lowest


@pytest.mark.parametrize("strategy", ["thompson", "epsilon_greedy"])
def test_the_better_version_takes_over_and_the_other_keeps_a_floor(strategy: str) -> None:
    results = [_stream(strategy, seed) for seed in SEEDS]
    decisions = [d for d, _ in results]
    assert all(d is not None and d <= WITHIN for d in decisions), decisions
    floor = make_policy(strategy, list(RATES)).floor
    assert floor > 0
    assert min(low for _, low in results) >= floor - 1e-9
    print(f"{strategy}: rows to decision, median over {len(SEEDS)} seeds: {statistics.median(decisions)}")


def test_with_equal_rewards_nothing_is_decided() -> None:
    policy = ThompsonSampling(["a", "b"], seed=1)
    for _ in range(200):
        policy.reward("a", 1.0)
        policy.reward("b", 1.0)
    assert policy.shares() == pytest.approx({"a": 0.5, "b": 0.5}, abs=0.01)


def test_a_seeded_policy_repeats_its_choices() -> None:
    first, second = ThompsonSampling(["a", "b"], seed=3), ThompsonSampling(["a", "b"], seed=3)
    for policy in (first, second):
        policy.reward("a", 0.9)
        policy.reward("b", 0.2)
    assert [first.choose() for _ in range(50)] == [second.choose() for _ in range(50)]


def test_a_key_sticks_to_its_arm_while_shares_hold() -> None:
    policy = EpsilonGreedy(["champion", "challenger"], seed=0, epsilon=0.2)
    keys = [f"customer-{i}" for i in range(400)]
    first = {k: policy.choose(k) for k in keys}
    assert {k: policy.choose(k) for k in keys} == first  # same shares: same arms
    # keys land on arms in proportion to the shares (50/50 before any reward)
    assert 0.4 < sum(a == "challenger" for a in first.values()) / len(keys) < 0.6
    for _ in range(20):
        policy.reward("challenger", 1.0)
    assert policy.shares() == pytest.approx({"champion": 0.1, "challenger": 0.9})
    moved = {k: policy.choose(k) for k in keys}
    # only keys whose point now lies in the challenger's larger slice moved, and all towards it
    assert all(moved[k] == "challenger" for k in keys if first[k] == "challenger")
    assert {k for k in keys if moved[k] != first[k]} == {k for k in keys if 0.1 <= sticky_point(k) < 0.5}


def test_non_binary_rewards_are_fractional_successes() -> None:
    policy = ThompsonSampling(["a", "b"], seed=0)
    for _ in range(100):
        policy.reward("a", 0.7)
        policy.reward("b", 0.3)
    assert policy.stats()["a"].mean == pytest.approx(71 / 102)
    assert policy.shares()["a"] > 0.95


@pytest.mark.parametrize("value", [-0.1, 1.5, "1", float("nan"), True])
def test_a_reward_outside_0_to_1_is_refused(value) -> None:
    policy = EpsilonGreedy(["a", "b"])
    with pytest.raises(InvalidInputError, match="from 0 to 1"):
        policy.reward("a", value)
    with pytest.raises(InvalidInputError, match="not an arm"):
        policy.reward("c", 1.0)


def test_bad_settings_say_what_is_allowed() -> None:
    with pytest.raises(InvalidInputError, match="epsilon must be above 0"):
        EpsilonGreedy(["a", "b"], epsilon=0.0)
    with pytest.raises(InvalidInputError, match="strategy must be one of thompson, epsilon_greedy"):
        make_policy("ucb", ["a", "b"])
    with pytest.raises(InvalidInputError, match="two or more distinct arms"):
        ThompsonSampling(["a"])
