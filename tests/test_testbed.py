"""The testbed's bookkeeping without root: link parsing, names and addresses, the commands it runs,
and that every namespace it made is deleted, also when setup fails half-way or the process gets
SIGTERM. A recording runner stands in for ``ip`` and ``tc`` (tests/test_testbed_e2e.py runs them)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from p2ploader.app.cli import build_parser
from p2ploader.app.testbedrun import plan_from_args, swarm_result_line, wants_testbed
from p2ploader.config import LoaderConfig
from p2ploader.errors import ConfigError, TestbedError, TestbedUnavailableError, UsageError
from p2ploader.sim.scenario import Scenario
from p2ploader.testbed import netns
from p2ploader.testbed.links import RateRange, format_rate, parse_rate, parse_rate_range
from p2ploader.testbed.netns import NETWORK, Testbed, host_address, sweep_leftovers, tbf_arguments
from p2ploader.testbed.swarm import draw_links, viewer_link_rates

# -- links -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bits"),
    [("20mbit", 20e6), ("1.5mbit", 1.5e6), ("500kbit", 5e5), ("1gbit", 1e9), ("800bit", 800.0), ("3", 3e6)],
)
def test_rates_use_tc_units_and_a_bare_number_is_mbit(text: str, bits: float) -> None:
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["", "fast", "20mb", "20 mbps", "-3mbit", "0mbit", "1e6bit"])
def test_a_bad_rate_is_a_config_error_naming_it(text: str) -> None:
    with pytest.raises(ConfigError, match="rate"):
        parse_rate(text)


def test_ranges_take_the_high_ends_unit_for_a_bare_low_end() -> None:
    assert parse_rate_range("1-20mbit") == RateRange(1e6, 20e6)
    assert parse_rate_range("500kbit-2mbit") == RateRange(5e5, 2e6)
    assert parse_rate_range("100-900kbit") == RateRange(1e5, 9e5)
    assert parse_rate_range("30mbit") == RateRange(30e6, 30e6)
    assert str(parse_rate_range("1-20mbit")) == "1mbit-20mbit"
    assert str(parse_rate_range("30mbit")) == "30mbit"
    assert format_rate(1_234_567) == "1.235mbit"


def test_a_range_going_downwards_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="low <= high"):
        parse_rate_range("20-1mbit")


def test_ranges_convert_to_and_from_the_simulators_mbit_per_second() -> None:
    scenario = Scenario(uplink_mbps=(1, 20))
    assert RateRange.from_mbps(scenario.uplink_mbps) == parse_rate_range("1-20mbit")
    assert parse_rate_range("1-20mbit").mbps == (1.0, 20.0)


def test_draws_are_uniform_within_the_range_and_one_rate_is_itself() -> None:
    rng = random.Random(3)
    draws = [RateRange(1e6, 20e6).draw(rng) for _ in range(500)]
    assert all(1e6 <= d <= 20e6 for d in draws)
    assert min(draws) < 3e6 and max(draws) > 18e6
    assert RateRange(5e6, 5e6).draw(rng) == 5e6


def test_each_viewers_links_depend_on_the_seed_and_its_index_only() -> None:
    up, down = parse_rate_range("1-20mbit"), parse_rate_range("20-50mbit")
    five = draw_links(5, uplink=up, downlink=down, seed=7)
    ten = draw_links(10, uplink=up, downlink=down, seed=7)
    assert ten[:5] == five
    assert draw_links(5, uplink=up, downlink=down, seed=8) != five
    assert all(1e6 <= u <= 20e6 and 20e6 <= d <= 50e6 for u, d in ten)


# -- names, addresses, tbf ---------------------------------------------------------------------


def test_addresses_are_in_the_benchmarking_range_and_distinct() -> None:
    addresses = [host_address(i) for i in range(600)]
    assert addresses[0] == "198.18.0.1"
    assert len(set(addresses)) == 600
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("198.18.0.0/15") for a in addresses)
    assert NETWORK.prefixlen == 15
    with pytest.raises(TestbedError):
        host_address(NETWORK.num_addresses)


def test_tbf_queue_is_the_given_seconds_at_the_rate_and_burst_at_least_two_frames() -> None:
    args = tbf_arguments(8e6, queue_seconds=0.1)  # 1 MB/s
    assert args == ["tbf", "rate", "8000000bit", "burst", "4000", "limit", "100000"]
    slow = tbf_arguments(1e6, queue_seconds=0.001)
    assert int(slow[4]) == 2 * 1514 and int(slow[6]) == 2 * 1514  # the queue holds at least a burst


class Recorder:
    """Stands in for ``ip``/``tc``: records every command, keeps a set of namespaces, and fails
    the command number ``fail_at`` (1-based) when set."""

    def __init__(self, *, fail_at: int | None = None, existing: Sequence[str] = ()) -> None:
        self.commands: list[list[str]] = []
        self.namespaces: set[str] = set(existing)
        self.fail_at = fail_at

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.commands.append(argv)
        if self.fail_at is not None and len(self.commands) == self.fail_at:
            raise TestbedError(f"{' '.join(argv)}: simulated failure")
        if argv[:3] == ["ip", "netns", "add"]:
            self.namespaces.add(argv[3])
        elif argv[:3] == ["ip", "netns", "delete"]:
            self.namespaces.remove(argv[3])
        elif argv[:3] == ["ip", "netns", "list"]:
            return "".join(f"{name} (id: 0)\n" for name in sorted(self.namespaces))
        return ""


def _bed(recorder: Recorder, **options: object) -> Testbed:
    return Testbed(prefix="p2pl-4242-", run=recorder, check=lambda: None, **options)  # type: ignore[arg-type]


def test_setup_commands_shape_the_uplink_on_the_host_and_the_downlink_on_the_hub() -> None:
    recorder = Recorder()
    with _bed(recorder, queue_seconds=0.2) as bed:
        viewer = bed.add_host("v0", uplink_bps=2e6, downlink_bps=30e6)
        origin = bed.add_host("origin")
        assert bed.namespaces == ("p2pl-4242-hub", "p2pl-4242-v0", "p2pl-4242-origin")
        assert (viewer.address, origin.address) == ("198.18.0.1", "198.18.0.2")
        assert bed.command(viewer, ["python"]) == ["ip", "netns", "exec", "p2pl-4242-v0", "python"]
    commands = [" ".join(c) for c in recorder.commands]
    assert "ip -n p2pl-4242-hub link add br0 type bridge" in commands
    assert "ip -n p2pl-4242-hub link add v0 type veth peer name eth0 netns p2pl-4242-v0" in commands
    assert "ip -n p2pl-4242-v0 addr add 198.18.0.1/15 dev eth0" in commands
    uplink = "tc -n p2pl-4242-v0 qdisc replace dev eth0 root tbf rate 2000000bit burst 3028 limit 50000"
    downlink = "tc -n p2pl-4242-hub qdisc replace dev v0 root tbf rate 30000000bit burst 15000 limit 750000"
    assert uplink in commands and downlink in commands
    assert not any(c.startswith("tc -n p2pl-4242-origin") or "dev v1 root" in c for c in commands)
    assert recorder.namespaces == set()
    assert bed.namespaces == ()
    # Hosts are deleted before the hub.
    deletes = [c[3] for c in recorder.commands if c[:3] == ["ip", "netns", "delete"]]
    assert deletes == ["p2pl-4242-origin", "p2pl-4242-v0", "p2pl-4242-hub"]


@pytest.mark.parametrize(
    ("output", "sent"),
    [
        (
            '[{"ifname": "eth0", "stats64": {"tx": {"bytes": 123456789012}, "rx": {"bytes": 5}}}]',
            123456789012,
        ),
        ('[{"ifname": "eth0", "stats": {"tx": {"bytes": 42}, "rx": {"bytes": 5}}}]', 42),
        ("", None),
        ('[{"ifname": "eth0"}]', None),
        ("[]", None),
    ],
)
def test_a_hosts_sent_bytes_are_its_links_transmit_counter(output: str, sent: int | None) -> None:
    class Counters(Recorder):
        def __call__(self, argv: Sequence[str]) -> str:
            answer = super().__call__(argv)
            return output if list(argv[3:]) == ["-s", "-j", "link", "show", "dev", "eth0"] else answer

    recorder = Counters()
    with _bed(recorder) as bed:
        origin = bed.add_host("origin", uplink_bps=5e6)
        if sent is None:
            with pytest.raises(TestbedError, match="unreadable link statistics"):
                bed.sent_bytes(origin)
        else:
            assert bed.sent_bytes(origin) == sent
    assert ["ip", "-n", "p2pl-4242-origin", "-s", "-j", "link", "show", "dev", "eth0"] in recorder.commands


# 4 commands for the hub (with the sweep's list), 9 per shaped host: fail each of them in turn.
@pytest.mark.parametrize("fail_at", range(1, 23))
def test_a_failure_in_the_middle_of_setup_leaves_no_namespace(fail_at: int) -> None:
    recorder = Recorder(fail_at=fail_at)

    def set_up() -> None:
        with _bed(recorder) as bed:
            bed.add_host("v0", uplink_bps=2e6, downlink_bps=30e6)
            bed.add_host("v1", uplink_bps=2e6, downlink_bps=30e6)

    with pytest.raises(TestbedError, match="simulated failure"):
        set_up()
    assert recorder.namespaces == set()


def test_an_exception_in_the_body_still_deletes_every_namespace() -> None:
    recorder = Recorder()

    def interrupted() -> None:
        with _bed(recorder) as bed:
            bed.add_host("v0")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert recorder.namespaces == set()


def test_sigterm_unwinds_the_testbed_and_the_previous_handler_comes_back() -> None:
    recorder = Recorder()
    before = signal.getsignal(signal.SIGTERM)

    def terminated() -> None:
        with _bed(recorder) as bed:
            bed.add_host("v0")
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(SystemExit) as exited:
        terminated()
    assert exited.value.code == 128 + signal.SIGTERM
    assert recorder.namespaces == set()
    assert signal.getsignal(signal.SIGTERM) is before


def test_sweep_deletes_only_namespaces_of_dead_testbed_runs() -> None:
    recorder = Recorder(existing=["p2pl-111-hub", "p2pl-111-v0", "p2pl-222-hub", "other", "p2pl-x-hub"])
    removed = sweep_leftovers(recorder, alive=lambda pid: pid == 222)
    assert sorted(removed) == ["p2pl-111-hub", "p2pl-111-v0"]
    assert recorder.namespaces == {"p2pl-222-hub", "other", "p2pl-x-hub"}


def test_starting_sweeps_leftovers_of_dead_runs_first() -> None:
    dead = "p2pl-999999999-v3"  # no such pid
    recorder = Recorder(existing=[dead])
    with _bed(recorder):
        assert dead not in recorder.namespaces


def test_roles_and_prefixes_are_checked() -> None:
    recorder = Recorder()
    with _bed(recorder) as bed:
        with pytest.raises(TestbedError, match="role"):
            bed.add_host("Viewer 1")
        bed.add_host("v0")
        with pytest.raises(TestbedError, match="already"):
            bed.add_host("v0")
    with pytest.raises(TestbedError, match="prefix"):
        Testbed(prefix="other-")


# -- without root or iproute2 ------------------------------------------------------------------


def test_without_root_the_error_says_root_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: f"/usr/sbin/{tool}")
    with pytest.raises(TestbedUnavailableError, match="needs root") as raised, Testbed():
        pass
    assert isinstance(raised.value, UsageError)


def test_without_tc_the_error_names_the_missing_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns.shutil, "which", lambda tool: None if tool == "tc" else "/usr/sbin/ip")
    with pytest.raises(TestbedUnavailableError, match="the tc command"):
        netns.check_available()


def test_a_failing_command_is_a_testbed_error_with_its_output() -> None:
    with pytest.raises(TestbedError, match="exit status"):
        netns.run_command(["ip", "link", "show", "no-such-device-p2pl"])


# -- the swarm command's testbed options -------------------------------------------------------


def _swarm_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["swarm", *argv])


def test_swarm_runs_on_loopback_unless_a_link_or_scenario_is_given(tmp_path: Path) -> None:
    assert not wants_testbed(_swarm_args("http://127.0.0.1:8080/live/master.m3u8"))
    args = _swarm_args(str(tmp_path), "--uplink", "1-20mbit", "--downlink", "20-50mbit")
    assert wants_testbed(args)
    plan = plan_from_args(args)
    assert plan.uplink == RateRange(1e6, 20e6) and plan.downlink == RateRange(20e6, 50e6)
    assert plan.origin_bps is None and plan.queue_seconds == 0.1


def test_swarm_on_the_testbed_wants_a_folder_not_a_url() -> None:
    args = _swarm_args("http://127.0.0.1:8080/live/master.m3u8", "--uplink", "5mbit")
    with pytest.raises(ConfigError, match="folder"):
        plan_from_args(args)


def test_swarm_on_the_testbed_refuses_an_outside_tracker(tmp_path: Path) -> None:
    args = _swarm_args(str(tmp_path), "--uplink", "5mbit", "--tracker", "ws://127.0.0.1:8000")
    with pytest.raises(ConfigError, match="leave out --tracker"):
        plan_from_args(args)


def test_a_bad_link_option_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _swarm_args("x", "--uplink", "fast")
    assert "not a link rate" in capsys.readouterr().err


def test_a_scenario_file_gives_the_swarm_its_audience_and_links(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'name = "fidelity"\nviewers = 6\nduration_s = 60\njoin_window_s = 12\nuplink_mbps = [1, 20]\n'
        'downlink_mbps = 30\norigin_mbps = 100\nlatency_segments = 4\nseed = 3\npolicy = "p2ploader-live"\n'
    )
    args = _swarm_args(str(tmp_path), "--scenario", str(scenario), "--downlink", "40mbit")
    plan = plan_from_args(args)
    assert (args.viewers, args.duration, args.stagger, args.latency, args.seed) == (6, 60.0, 2.0, 4, 3)
    assert plan.uplink == RateRange(1e6, 20e6)
    assert plan.downlink == RateRange(40e6, 40e6)  # the option wins over the scenario
    assert plan.origin_bps == 100e6
    assert (plan.scenario, plan.policy) == ("fidelity", "p2ploader-live")


def test_the_link_queue_is_the_options_then_the_scenarios_uplink_queue_then_the_default(
    tmp_path: Path,
) -> None:
    from p2ploader.app.testbedrun import DEFAULT_LINK_QUEUE_S

    queued = tmp_path / "queued.toml"
    queued.write_text('name = "q"\nviewers = 2\nuplink_mbps = [1, 2]\nuplink_queue_s = 0.5\n')
    plain = tmp_path / "plain.toml"
    plain.write_text('name = "p"\nviewers = 2\nuplink_mbps = [1, 2]\n')
    assert (
        plan_from_args(_swarm_args(str(tmp_path), "--uplink", "2mbit")).queue_seconds
        == DEFAULT_LINK_QUEUE_S
        == 0.1
    )
    assert plan_from_args(_swarm_args(str(tmp_path), "--scenario", str(plain))).queue_seconds == 0.1
    assert plan_from_args(_swarm_args(str(tmp_path), "--scenario", str(queued))).queue_seconds == 0.5
    with_option = _swarm_args(str(tmp_path), "--scenario", str(queued), "--link-queue", "0.2")
    assert plan_from_args(with_option).queue_seconds == 0.2  # the command line wins


def test_a_scenarios_loader_settings_refine_the_preset_on_the_testbed(tmp_path: Path) -> None:
    from p2ploader.app.cli import _testbed_config

    scenario = tmp_path / "s.toml"
    scenario.write_text(
        'viewers = 2\nmax_peers = 7\npolicy = "p2pml-0.6"\n'
        "[loader]\nrequiredSegmentsPriority = 2\nhttpDownloadRanges = true\n"
    )
    args = _swarm_args(str(tmp_path), "--scenario", str(scenario), "--preset", "faq-vod")
    plan = plan_from_args(args)
    config = _testbed_config(args, plan)
    # The scenario's table and audience settings, as the simulator applies them ...
    assert (config.required_segments_priority, config.http_download_ranges) == (2, True)
    assert (config.max_peers, config.policy) == (7, "p2pml-0.6")
    # ... on top of the preset, whose other settings stay.
    preset = LoaderConfig.preset("faq-vod")
    assert preset.forward_segment_count != LoaderConfig().forward_segment_count
    assert config.forward_segment_count == preset.forward_segment_count
    # Without a scenario the viewers get the preset as it is.
    plain = _swarm_args(str(tmp_path), "--uplink", "5mbit", "--preset", "faq-vod")
    assert _testbed_config(plain, plan_from_args(plain)) == preset


def test_a_scenarios_given_links_shape_the_first_viewers_and_the_options_win(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text("viewers = 3\nuplink_mbps = [1, 20]\nviewer_links_mbps = [[1.5, 30], [2, 40]]\n")
    plan = plan_from_args(_swarm_args(str(tmp_path), "--scenario", str(scenario)))
    assert plan.links == ((1.5e6, 30e6), (2e6, 40e6))
    rates = viewer_link_rates(3, uplink=plan.uplink, downlink=plan.downlink, seed=1, links=plan.links)
    drawn = draw_links(3, uplink=RateRange(1e6, 20e6), downlink=plan.downlink or RateRange(1, 1), seed=1)
    # The given two, then the third viewer's own draw, as without given links.
    assert rates == [(1.5e6, 30e6), (2e6, 40e6), drawn[2]]
    # A link option on the command line replaces the scenario's links, given ones included.
    plain = plan_from_args(_swarm_args(str(tmp_path), "--scenario", str(scenario), "--uplink", "5mbit"))
    assert plain.links == ()


def test_without_a_range_or_a_given_link_a_side_stays_unshaped() -> None:
    rates = viewer_link_rates(2, uplink=RateRange(2e6, 2e6), downlink=None, seed=1, links=[(1e6, 9e6)])
    assert rates == [(1e6, 9e6), (2e6, None)]


def test_the_simulators_default_origin_bandwidth_leaves_the_origin_unshaped(tmp_path: Path) -> None:
    scenario = tmp_path / "s.json"
    scenario.write_text('{"viewers": 2}')
    plan = plan_from_args(_swarm_args(str(tmp_path), "--scenario", str(scenario)))
    assert plan.origin_bps is None
    assert plan.uplink == RateRange.from_mbps(Scenario().uplink_mbps)


def test_swarm_result_line() -> None:
    line = swarm_result_line(
        scenario="s", policy="p2ploader-live", viewers=5, p2p_ratio=0.6, stalls=1, startup_s=0.5
    )
    assert line == (
        "RESULT swarm scenario=s policy=p2ploader-live viewers=5 p2p_ratio=0.600 ratio_to_best=0.750 "
        "stalls=1 startup_s=0.50"
    )


def test_swarm_on_the_testbed_without_root_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from p2ploader.app.cli import EXIT_ERROR, main

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert main(["swarm", str(tmp_path), "--uplink", "1-20mbit", "-n", "2", "--quiet"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("p2ploader swarm: error: the testbed needs root"), err


def test_simulate_prints_a_result_line_per_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from p2ploader.app.cli import main

    scenario = tmp_path / "tiny.toml"
    scenario.write_text('name = "tiny"\nviewers = 3\nduration_s = 30\nlatency_ms = 0\njitter_ms = 0\n')
    assert main(["simulate", str(scenario), "--jobs", "1", "--quiet"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 2  # the scenario's policy, and P2P off
    assert lines[0].startswith("RESULT simulate scenario=tiny policy=p2pml-0.6 viewers=3 p2p_ratio=")
    assert lines[1].startswith("RESULT simulate scenario=tiny policy=off viewers=3 p2p_ratio=0.000 ")


def test_two_testbeds_in_one_process_have_different_names() -> None:
    first, second = (Testbed(run=Recorder(), check=lambda: None) for _ in range(2))
    assert first.prefix.startswith(f"p2pl-{os.getpid()}-") and second.prefix.startswith(
        f"p2pl-{os.getpid()}-"
    )
    assert first.prefix != second.prefix
    assert first.hub != second.hub


class FailingDelete(Recorder):
    def __call__(self, argv: Sequence[str]) -> str:
        if list(argv[:3]) == ["ip", "netns", "delete"] and argv[3].endswith("-v0"):
            self.commands.append(list(argv))
            raise TestbedError("ip netns delete: simulated failure")
        return super().__call__(argv)


def test_a_namespace_that_cannot_be_deleted_does_not_stop_the_others_or_hide_the_first_error() -> None:
    recorder = FailingDelete()

    def failing_body() -> None:
        with _bed(recorder) as bed:
            bed.add_host("v0")
            bed.add_host("v1")
            raise ValueError("the body's own error")

    with pytest.raises(ValueError, match="the body's own error"):
        failing_body()
    assert recorder.namespaces == {"p2pl-4242-v0"}  # the others are deleted all the same

    recorder = FailingDelete()
    bed = _bed(recorder)
    bed.start()
    bed.add_host("v0")
    with pytest.raises(TestbedError, match="simulated failure"):
        bed.close()
    assert recorder.namespaces == {"p2pl-4242-v0"} and bed.namespaces == ("p2pl-4242-v0",)


def test_peers_keep_each_others_testbed_host_candidates() -> None:
    # On the testbed a viewer's only candidate is its eth0 address in 198.18.0.0/15 (private, not
    # reserved); outside loopback mode the remote screening must keep it.
    from p2ploader.aio.webrtc import screen_remote_candidates

    sdp = (
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        "a=candidate:1 1 udp 2130706431 198.18.0.7 40123 typ host\r\n"
    )
    screened = screen_remote_candidates(sdp, loopback_only=False)
    assert screened.kept == 1 and not screened.dropped
    assert screen_remote_candidates(sdp, loopback_only=True).kept == 0  # why the testbed turns it off
