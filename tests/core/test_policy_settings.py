"""``LoaderConfig.policy_settings``: a policy's own settings from the config, a FAQ object or a
scenario, with typed errors for every fault."""

from __future__ import annotations

import random
from typing import Any

import pytest

from p2ploader.config import LoaderConfig
from p2ploader.core.livepolicy import LivePolicy, LivePolicySettings
from p2ploader.core.p2pml22 import P2PML22Policy, P2PML22Settings
from p2ploader.core.scheduler import Scheduler
from p2ploader.errors import ConfigError
from p2ploader.sim import Scenario, run_scenario


def test_policy_settings_reach_the_live_policy() -> None:
    config = LoaderConfig(
        policy="p2ploader-live", policy_settings={"http_lead_time": 1.5, "seeders_per_segment": 2}
    )
    policy = Scheduler(config, rng=random.Random(1)).policy
    assert isinstance(policy, LivePolicy)
    assert policy.settings == LivePolicySettings(http_lead_time=1.5, seeders_per_segment=2.0)
    # No settings: the policy's defaults.
    default = Scheduler(LoaderConfig(policy="p2ploader-live"), rng=random.Random(1)).policy
    assert isinstance(default, LivePolicy) and default.settings == LivePolicySettings()


def test_policy_settings_from_a_faq_object() -> None:
    config = LoaderConfig.from_faq(
        {
            "loader": {
                "policy": "p2pml-2.2",
                "policySettings": {"high_demand_time_window": 20, "http_error_retries": 2},
            }
        }
    )
    policy = Scheduler(config, rng=random.Random(1)).policy
    assert isinstance(policy, P2PML22Policy)
    assert policy.settings == P2PML22Settings(high_demand_time_window=20.0, http_error_retries=2)
    assert isinstance(policy.settings.http_error_retries, int)
    assert config.to_faq()["loader"]["policySettings"] == {
        "high_demand_time_window": 20,
        "http_error_retries": 2,
    }


@pytest.mark.parametrize(
    ("policy", "settings", "message"),
    [
        ("p2ploader-live", {"http_lead_tme": 1.0}, "did you mean 'http_lead_time'"),
        ("p2ploader-live", {"http_lead_time": "1"}, "must be a number"),
        ("p2ploader-live", {"http_lead_time": True}, "must be a number"),
        ("p2ploader-live", {"http_lead_time": -1.0}, "must be >= 0"),
        ("p2pml-2.2", {"http_error_retries": 2.5}, "must be a whole number"),
        ("p2pml-2.2", {"http_error_retries": 0}, "http_error_retries"),
        ("p2pml-0.6", {"http_lead_time": 1.0}, "has no settings of its own"),
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
    config = LoaderConfig(policy="p2ploader-live", policy_settings={"seeders_per_segmnt": 2})
    with pytest.raises(ConfigError) as info:
        Scheduler(config, rng=random.Random(1))
    assert info.value.suggestion == "seeders_per_segment"


def test_policy_settings_are_read_only() -> None:
    config = LoaderConfig(policy="p2ploader-live", policy_settings={"http_lead_time": 1.5})
    with pytest.raises(TypeError):
        config.policy_settings["http_lead_time"] = 9.0  # type: ignore[index]


def test_a_scenario_passes_policy_settings_and_checks_them_early() -> None:
    scenario = Scenario(
        viewers=4,
        duration_s=30.0,
        policy="p2ploader-live",
        loader={"policySettings": {"http_lead_time": 2.0}},
    )
    assert scenario.loader_config().policy_settings == {"http_lead_time": 2.0}
    assert run_scenario(scenario).stalls == 0
    with pytest.raises(ConfigError, match="has no setting"):
        Scenario(policy="p2ploader-live", loader={"policySettings": {"nope": 1}})
