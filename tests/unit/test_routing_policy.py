"""The routing policy, data locality and the expected start, without any site (pure)."""

from __future__ import annotations

import pytest

from gateway.routing.locality import local_inputs
from gateway.routing.policy import (
    NoEligibleSite,
    Refusal,
    RequestedSiteRefused,
    SiteFacts,
    decide,
    minutes,
)
from gateway.routing.readings import expected_start
from gateway.settings import DataSources
from hpc_adapters.base import PartitionLoad

pytestmark = pytest.mark.unit


def _decide(*facts: SiteFacts, requested: str | None = None) -> tuple[str, str, str]:
    d = decide(facts, requested, default_site="hpcgw", tie_seconds=60)
    return d.site, d.rule, d.reason


def test_the_clients_choice_wins_over_every_ranking() -> None:
    hpcgw = SiteFacts("hpcgw", local_data=("input 'a': host x",), expected_start_seconds=0)
    meso = SiteFacts("mesocentre", expected_start_seconds=3600, cost=9)
    site, rule, reason = _decide(hpcgw, meso, requested="mesocentre")
    assert (site, rule) == ("mesocentre", "requested")
    assert reason == "mesocentre requested by the client"


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (SiteFacts("mesocentre", Refusal.DISABLED, "disabled by the operator"), "disabled"),
        (SiteFacts("mesocentre", Refusal.DOWN, "down (connection refused)"), "connection refused"),
        (
            SiteFacts("mesocentre", Refusal.PROCESS, "process 'ndvi' is not installed there"),
            "not installed",
        ),
    ],
)
def test_a_requested_site_that_fails_a_filter_is_refused_with_its_reason(
    facts: SiteFacts, words: str
) -> None:
    with pytest.raises(RequestedSiteRefused) as refused:
        _decide(SiteFacts("hpcgw"), facts, requested="mesocentre")
    assert refused.value.refusal is facts.refusal
    assert words in refused.value.detail


def test_an_unknown_requested_site_names_the_known_ones() -> None:
    with pytest.raises(RequestedSiteRefused) as refused:
        _decide(SiteFacts("hpcgw"), SiteFacts("mesocentre"), requested="nowhere")
    assert refused.value.refusal is Refusal.UNKNOWN
    assert "hpcgw, mesocentre" in refused.value.detail


def test_no_eligible_site_gives_the_reason_of_each() -> None:
    with pytest.raises(NoEligibleSite) as none:
        _decide(
            SiteFacts("hpcgw", Refusal.DOWN, "down (timed out)"),
            SiteFacts("mesocentre", Refusal.LOGIN, "no Slurm association for 'bob'"),
        )
    assert str(none.value) == (
        "hpcgw: down (timed out); mesocentre: no Slurm association for 'bob'"
    )


def test_the_only_eligible_site_says_why_the_others_are_out() -> None:
    site, rule, reason = _decide(
        SiteFacts("hpcgw", Refusal.PROCESS, "process 'x' is not installed there"),
        SiteFacts("mesocentre", expected_start_seconds=9000),
    )
    assert (site, rule) == ("mesocentre", "only")
    assert reason == "only eligible site (hpcgw: process 'x' is not installed there)"


def test_data_locality_comes_before_the_queue_and_the_price() -> None:
    busy_but_local = SiteFacts(
        "mesocentre",
        local_data=("input 'image': host eo.meso",),
        expected_start_seconds=600,
        cost=5,
    )
    idle_and_cheap = SiteFacts("hpcgw", expected_start_seconds=0, cost=1)
    site, rule, reason = _decide(idle_and_cheap, busy_but_local)
    assert (site, rule) == ("mesocentre", "data")
    assert reason == "data local to mesocentre (input 'image': host eo.meso)"


def test_the_site_starting_soonest_wins_and_the_reason_shows_both_queues() -> None:
    site, rule, reason = _decide(
        SiteFacts("hpcgw", expected_start_seconds=840, cost=1),
        SiteFacts("mesocentre", expected_start_seconds=0, cost=2),
    )
    assert (site, rule, reason) == (
        "mesocentre",
        "queue",
        "queue: mesocentre 0 min vs hpcgw 14 min",
    )


def test_queues_within_the_tie_go_to_the_cheaper_site() -> None:
    hpcgw = SiteFacts("hpcgw", expected_start_seconds=30, cost=0.05, price_per_core_hour=0.05)
    meso = SiteFacts("mesocentre", expected_start_seconds=0, cost=0.02, price_per_core_hour=0.02)
    site, rule, reason = _decide(hpcgw, meso)
    assert (site, rule) == ("mesocentre", "price")
    assert reason == "cheapest: mesocentre 0.02 vs hpcgw 0.05 EUR/core-hour"


def test_a_site_whose_queue_is_unknown_ranks_after_one_that_tells() -> None:
    site, rule, _ = _decide(
        SiteFacts("hpcgw", expected_start_seconds=None),
        SiteFacts("mesocentre", expected_start_seconds=0),
    )
    assert (site, rule) == ("mesocentre", "queue")


def test_a_full_tie_goes_to_the_default_site() -> None:
    site, rule, reason = _decide(SiteFacts("mesocentre"), SiteFacts("hpcgw"))
    assert (site, rule) == ("hpcgw", "default")
    assert reason == "no difference between mesocentre, hpcgw: default site"


def test_inputs_are_local_by_host_prefix_or_stac_collection() -> None:
    data = DataSources(
        hosts=["EO.Mirror.example"],
        url_prefixes=["https://archive.example/s2/"],
        stac_collections=["sentinel-2-l2a"],
    )
    inputs = {
        "a": {"href": "https://eo.mirror.example/x.tif"},
        "b": [{"href": "https://archive.example/s2/tile.tif"}, {"href": "https://other/x"}],
        "c": {"href": "https://stac.example/collections/sentinel-2-l2a/items/S2A_1"},
        "d": "https://eo.mirror.example/not-a-reference",
        "e": {"href": "https://stac.example/collections/landsat/items/L8"},
    }
    assert local_inputs(inputs, data) == (
        "input 'a': host eo.mirror.example",
        "input 'b': mirror https://archive.example/s2/",
        "input 'c': collection sentinel-2-l2a",
    )


def test_expected_start_from_the_partition_load() -> None:
    idle = PartitionLoad(total_cpus=2)
    assert expected_start(idle, cores=1) == 0.0
    queued = PartitionLoad(total_cpus=2, pending_jobs=3, pending_cpu_seconds=3 * 600)
    assert expected_start(queued, cores=1) == 900.0
    full = PartitionLoad(total_cpus=2, busy_cpus=2, soonest_end_seconds=120)
    assert expected_start(full, cores=1) == 120.0
    assert expected_start(None, cores=1) is None
    assert minutes(840) == "14 min" and minutes(7200) == "2.0 h"
