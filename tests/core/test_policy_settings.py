"""``LoaderConfig.policy_settings``: policies' own settings, per policy, from the config, a FAQ
object or a scenario, with typed errors for every fault."""

from __future__ import annotations

import random
from typing import Any

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core.policies.live import LivePolicy, LivePolicySettings
from p2ploader.core.policies.p2pml22 import P2PML22Policy, P2PML22Settings
from p2ploader.core.scheduler import Scheduler
from p2ploader.errors import ConfigError
from p2ploader.sim import Scenario, run_scenario

LIVE = "p2ploader-live"


def _policy(config: LoaderConfig) -> object:
    return Scheduler(config, rng=random.Random(1)).policy


def test_policy_settings_reach_the_live_policy() -> None:
    config = LoaderConfig(
        policy=LIVE, policy_settings={LIVE: {"http_lead_time": 1.5, "seeders_per_segment": 2}}
    )
    policy = _policy(config)
    assert isinstance(policy, LivePolicy)
    assert policy.settings == LivePolicySettings(http_lead_time=1.5, seeders_per_segment=2.0)
    # No entry: the policy's defaults.
    default = _policy(LoaderConfig(policy=LIVE))
    assert isinstance(default, LivePolicy) and default.settings == LivePolicySettings()


def test_each_policy_takes_its_own_entry() -> None:
    # One config for a side-by-side comparison: each policy picks its entry, 0.6 has none.
    settings = {LIVE: {"http_lead_time": 2.0}, "p2pml-2.2": {"http_error_retries": 2}}
    live = _policy(LoaderConfig(policy=LIVE, policy_settings=settings))
    windows = _policy(LoaderConfig(policy="p2pml-2.2", policy_settings=settings))
    assert isinstance(live, LivePolicy) and live.settings.http_lead_time == 2.0
    assert isinstance(windows, P2PML22Policy) and windows.settings.http_error_retries == 2
    assert _policy(LoaderConfig(policy="p2pml-0.6", policy_settings=settings)) is not None


def test_policy_settings_from_a_faq_object() -> None:
    settings = {"p2pml-2.2": {"high_demand_time_window": 20, "http_error_retries": 2.0}}
    config = LoaderConfig.from_faq({"loader": {"policy": "p2pml-2.2", "policySettings": settings}})
    policy = _policy(config)
    assert isinstance(policy, P2PML22Policy)
    assert policy.settings == P2PML22Settings(high_demand_time_window=20.0, http_error_retries=2)
    assert isinstance(policy.settings.http_error_retries, int)  # 2.0 from JSON is a whole number
    assert config.to_faq()["loader"]["policySettings"] == settings


@pytest.mark.parametrize(
    ("policy", "settings", "message"),
    [
        (LIVE, {LIVE: {"http_lead_tme": 1.0}}, "did you mean 'http_lead_time'"),
        (LIVE, {LIVE: {"http_lead_time": "1"}}, "must be a number"),
        (LIVE, {LIVE: {"http_lead_time": True}}, "must be a number"),
        (LIVE, {LIVE: {"http_lead_time": -1.0}}, "must be >= 0"),
        ("p2pml-2.2", {"p2pml-2.2": {"http_error_retries": 2.5}}, "must be a whole number"),
        ("p2pml-2.2", {"p2pml-2.2": {"http_error_retries": 0}}, "http_error_retries"),
        ("p2pml-0.6", {"p2pml-0.6": {"http_lead_time": 1.0}}, "has no settings of its own"),
        ("p2pml-0.6", {"p2ploader-lve": {}}, "did you mean 'p2ploader-live'"),
        ("p2pml-0.6", {LIVE: 1.0}, "must be a mapping"),
        # An entry for another policy is checked too: a comparison fails at once.
        ("p2pml-0.6", {LIVE: {"nope": 1}}, "has no setting 'nope'"),
    ],
)
def test_bad_policy_settings_raise_a_config_error(
    policy: str, settings: dict[str, Any], message: str
) -> None:
    config = LoaderConfig(policy=policy, policy_settings=settings)
    with pytest.raises(ConfigError, match=message) as info:
        Scheduler(config, rng=random.Random(1))
    assert info.value.key == "policy_settings"


def test_an_unknown_setting_names_the_closest_one() -> None:
    config = LoaderConfig(policy=LIVE, policy_settings={LIVE: {"seeders_per_segmnt": 2}})
    with pytest.raises(ConfigError) as info:
        Scheduler(config, rng=random.Random(1))
    assert info.value.suggestion == "seeders_per_segment"


def test_policy_settings_are_read_only() -> None:
    config = LoaderConfig(policy=LIVE, policy_settings={LIVE: {"http_lead_time": 1.5}})
    with pytest.raises(TypeError):
        config.policy_settings[LIVE]["http_lead_time"] = 9.0  # type: ignore[index]


def test_a_scenario_passes_policy_settings_and_checks_them_early() -> None:
    scenario = Scenario(
        viewers=4, duration_s=30.0, policy=LIVE, loader={"policySettings": {LIVE: {"http_lead_time": 2.0}}}
    )
    assert scenario.loader_config().policy_settings == {LIVE: {"http_lead_time": 2.0}}
    assert run_scenario(scenario).stalls == 0
    with pytest.raises(ConfigError, match="has no setting"):
        Scenario(loader={"policySettings": {LIVE: {"nope": 1}}})


def test_a_scenario_sweeps_one_policy_setting_at_a_time() -> None:
    base = Scenario(loader={"policySettings": {LIVE: {"seeders_per_segment": 2}}})
    swept = base.evolve(**{f"loader.policySettings.{LIVE}.http_lead_time": 2.0})
    assert swept.loader["policySettings"] == {LIVE: {"seeders_per_segment": 2, "http_lead_time": 2.0}}
    assert base.loader["policySettings"] == {LIVE: {"seeders_per_segment": 2}}  # the base is unchanged
    # Policy names have dots of their own.
    windows = base.evolve(**{"loader.policySettings.p2pml-2.2.http_error_retries": 2})
    assert windows.loader["policySettings"]["p2pml-2.2"] == {"http_error_retries": 2}
    with pytest.raises(ConfigError, match="did you mean 'http_lead_time'"):
        base.evolve(**{f"loader.policySettings.{LIVE}.http_lead_tim": 2.0})
