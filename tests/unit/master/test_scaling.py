"""The scaler's policy with plain values: no clock, no actors, no processes."""

from __future__ import annotations

import pytest

from titan_actors.master.scaling import Retire, Scaling, ScalingPolicy, Spawn, WorkerLoad

GENERAL = ("tag", "GENERAL")


def worker(name: str, host: str = "h1", tags=("GENERAL",), slots: int = 2, taken: int = 0,
           **fields) -> WorkerLoad:
    return WorkerLoad(name, host, frozenset(tags), slots, taken, **fields)


def scaling(**policy) -> Scaling:
    policy.setdefault("cooldown", 5.0)
    policy.setdefault("idle_timeout", 45.0)
    policy.setdefault("spawn_timeout", 30.0)
    return Scaling(ScalingPolicy(**policy))


# -- spawning ------------------------------------------------------------------------------


def test_a_saturated_worker_with_queued_jobs_for_its_tags_spawns_one_burst():
    s = scaling()
    decided = s.step([worker("w1", taken=2)], {GENERAL: 3}, now=100.0)
    assert decided.spawns == (Spawn("w1", "w1-burst-1", "h1",
                                    "3 jobs queued for GENERAL, all 1 workers tagged GENERAL "
                                    "busy"),)
    assert s.in_flight == ("w1-burst-1",)


@pytest.mark.parametrize("workers, demand", [
    ([worker("w1", taken=2)], {}),                                   # nothing queued
    ([worker("w1", taken=1)], {GENERAL: 3}),                         # a free slot
    ([worker("w1", taken=2), worker("w2", taken=0)], {GENERAL: 5}),  # another capable is free
    ([worker("w1", taken=2)], {("tag", "GPU"): 2}),                  # nobody has the tag
    ([worker("w1", taken=2)], {("pin", "w1"): 4}),                   # pinned: only w1 runs them
    ([worker("w1", taken=2, draining=True)], {GENERAL: 2}),          # draining: takes no work
    ([worker("w1", taken=2, connected=False)], {GENERAL: 2}),        # gone (its lease runs)
    ([worker("w1", slots=0)], {GENERAL: 1}),                         # a worker without slots
])
def test_no_spawn(workers, demand):
    assert scaling().step(workers, demand, now=100.0).spawns == ()


def test_a_disconnected_or_draining_worker_neither_blocks_nor_spawns():
    workers = [worker("a", taken=0, connected=False), worker("b", taken=0, draining=True),
               worker("c", taken=2)]
    assert [sp.parent for sp in scaling().step(workers, {GENERAL: 1}, 0.0).spawns] == ["c"]


def test_bursting_is_disabled_with_a_maximum_of_zero():
    s = scaling(max_per_host=0)
    assert s.step([worker("w1", taken=2)], {GENERAL: 9}, 0.0).spawns == ()


def test_one_spawn_at_a_time_per_host_until_it_registers():
    s = scaling(cooldown=0.001)
    busy = worker("w1", taken=2)
    assert len(s.step([busy], {GENERAL: 9}, 0.0).spawns) == 1
    # still queued and saturated, but the burst is on its way
    assert s.step([busy], {GENERAL: 9}, 1.0).spawns == ()
    burst = worker("w1-burst-1", taken=2, ephemeral=True, burst_of="w1")
    decided = s.step([busy, burst], {GENERAL: 9}, 2.0)
    assert decided.arrived == ("w1-burst-1",) and s.in_flight == ("w1-burst-2",)
    assert [sp.name for sp in decided.spawns] == ["w1-burst-2"]


def test_the_cooldown_spaces_spawns_on_a_host():
    s = scaling(cooldown=5.0)
    busy = worker("w1", taken=2)
    s.step([busy], {GENERAL: 9}, 0.0)
    burst = worker("w1-burst-1", taken=2, burst_of="w1", ephemeral=True)
    assert s.step([busy, burst], {GENERAL: 9}, 4.9).spawns == ()
    assert len(s.step([busy, burst], {GENERAL: 9}, 5.0).spawns) == 1


def test_bursts_on_their_way_cover_the_queued_jobs():
    s = scaling(cooldown=0.001)
    s.step([worker("w1", host="h1", taken=2), worker("w2", host="h2", taken=2)],
           {GENERAL: 2}, 0.0)
    # one burst of 2 slots is coming for the 2 queued jobs: no second one on the other host
    assert s.in_flight == ("w1-burst-1",)
    decided = s.step([worker("w1", host="h1", taken=2), worker("w2", host="h2", taken=2)],
                     {GENERAL: 3}, 1.0)
    assert [(sp.parent, sp.host) for sp in decided.spawns] == [("w2", "h2")]


def test_at_most_max_per_host_bursts_counting_registered_and_coming_ones():
    s = scaling(max_per_host=2, cooldown=0.001)
    workers = [worker("w1", taken=2),
               worker("w1-burst-1", taken=2, burst_of="w1", ephemeral=True),
               worker("w1-burst-2", taken=2, burst_of="w1", ephemeral=True, connected=False)]
    assert s.step(workers, {GENERAL: 9}, 0.0).spawns == ()
    # another host has room
    workers.append(worker("x1", host="h2", taken=2))
    assert [sp.parent for sp in s.step(workers, {GENERAL: 9}, 1.0).spawns] == ["x1"]


def test_one_spawn_per_host_per_step_and_the_host_with_fewest_bursts_first():
    s = scaling(cooldown=0.001)
    workers = [worker("a", host="h1", taken=2), worker("b", host="h1", taken=2),
               worker("c", host="h2", taken=2),
               worker("c-burst-1", host="h2", taken=2, burst_of="c", ephemeral=True),
               worker("g", host="h2", tags=("GPU",), slots=1, taken=1)]
    decided = s.step(workers, {GENERAL: 1, ("tag", "GPU"): 1}, 0.0)
    # GENERAL goes to h1 (no bursts there yet); GPU's only worker is on h2
    assert [(sp.parent, sp.host) for sp in decided.spawns] == [("a", "h1"), ("g", "h2")]


def test_a_burst_worker_never_spawns():
    s = scaling()
    workers = [worker("w1", taken=2, connected=False),
               worker("w1-burst-1", taken=2, burst_of="w1", ephemeral=True)]
    assert s.step(workers, {GENERAL: 4}, 0.0).spawns == ()


def test_a_hand_started_ephemeral_worker_may_spawn():
    decided = scaling().step([worker("e", taken=2, ephemeral=True)], {GENERAL: 1}, 0.0)
    assert [sp.parent for sp in decided.spawns] == ["e"]


def test_burst_names_skip_those_in_use():
    s = scaling(max_per_host=4)
    workers = [worker("w1", taken=2),
               worker("w1-burst-1", taken=2, burst_of="w1", ephemeral=True),
               worker("w1-burst-3", host="h9", taken=0, draining=True, burst_of="w1")]
    assert [sp.name for sp in s.step(workers, {GENERAL: 5}, 0.0).spawns] == ["w1-burst-2"]


def test_a_spawn_that_never_registers_is_abandoned_after_the_spawn_timeout():
    s = scaling(spawn_timeout=30.0, cooldown=1.0)
    busy = worker("w1", taken=2)
    s.step([busy], {GENERAL: 3}, 0.0)
    assert s.step([busy], {GENERAL: 3}, 29.9).abandoned == ()
    decided = s.step([busy], {GENERAL: 3}, 30.0)
    assert decided.abandoned == ("w1-burst-1",)
    assert [sp.name for sp in decided.spawns] == ["w1-burst-1"]  # tried again, same name


def test_a_failed_spawn_is_no_longer_in_flight_but_the_cooldown_runs():
    s = scaling(cooldown=5.0)
    busy = worker("w1", taken=2)
    s.step([busy], {GENERAL: 3}, 0.0)
    assert s.spawn_failed("w1-burst-1") and not s.spawn_failed("w1-burst-1")
    assert s.in_flight == ()
    assert s.step([busy], {GENERAL: 3}, 1.0).spawns == ()
    assert len(s.step([busy], {GENERAL: 3}, 5.0).spawns) == 1


# -- idle and retiring ---------------------------------------------------------------------


def test_an_idle_burst_or_ephemeral_worker_is_retired_after_the_idle_timeout():
    s = scaling(idle_timeout=45.0)
    workers = [worker("p"), worker("e", ephemeral=True),
               worker("b", burst_of="p", ephemeral=True)]
    first = s.step(workers, {}, 100.0)
    assert first.retires == () and first.idle == {"p": 0.0, "e": 0.0, "b": 0.0}
    assert s.step(workers, {}, 144.9).retires == ()
    decided = s.step(workers, {}, 145.0)
    assert decided.retires == (Retire("b", 45.0, "burst worker idle for 45 s"),
                               Retire("e", 45.0, "ephemeral worker idle for 45 s"))
    assert decided.idle["p"] == 45.0  # idle too, but permanent: never retired
    assert "p" not in {r.name for r in s.step(workers, {}, 2000.0).retires}


def test_a_busy_worker_is_not_idle_and_its_idle_time_starts_when_it_is_done():
    s = scaling(idle_timeout=10.0)
    s.step([worker("e", ephemeral=True, taken=1, activity=1)], {}, 0.0)
    decided = s.step([worker("e", ephemeral=True, taken=1, activity=1)], {}, 50.0)
    assert decided.idle == {} and decided.retires == ()
    s.step([worker("e", ephemeral=True, activity=1)], {}, 51.0)
    assert s.step([worker("e", ephemeral=True, activity=1)], {}, 60.9).retires == ()
    assert s.step([worker("e", ephemeral=True, activity=1)], {}, 61.0).retires


def test_work_between_two_looks_counts_as_work():
    s = scaling(idle_timeout=10.0)
    s.step([worker("e", ephemeral=True, activity=3)], {}, 0.0)
    # a short job came and went between the looks: idle again from this look on
    decided = s.step([worker("e", ephemeral=True, activity=4)], {}, 10.0)
    assert decided.retires == () and decided.idle == {"e": 0.0}
    assert s.step([worker("e", ephemeral=True, activity=4)], {}, 20.0).retires


@pytest.mark.parametrize("fields", [{"draining": True}, {"connected": False}])
def test_a_draining_or_disconnected_worker_is_not_retired(fields):
    s = scaling(idle_timeout=1.0)
    idle = worker("e", ephemeral=True, **fields)
    s.step([idle], {}, 0.0)
    assert s.step([idle], {}, 100.0).retires == ()


def test_a_refused_retirement_restarts_the_idle_time():
    s = scaling(idle_timeout=10.0)
    e = worker("e", ephemeral=True)
    s.step([e], {}, 0.0)
    assert s.step([e], {}, 10.0).retires
    s.retire_refused("e", 10.0)
    assert s.step([e], {}, 19.9).retires == ()
    assert s.step([e], {}, 20.0).retires


def test_a_worker_that_went_away_is_forgotten():
    s = scaling(idle_timeout=10.0)
    s.step([worker("e", ephemeral=True)], {}, 0.0)
    s.step([], {}, 5.0)
    # back (a new registration): idle from its first look again
    assert s.step([worker("e", ephemeral=True)], {}, 12.0).retires == ()
    assert s.step([worker("e", ephemeral=True)], {}, 22.0).retires


def test_kinds():
    assert worker("p").kind == "permanent" and not worker("p").retirable
    assert worker("e", ephemeral=True).kind == "ephemeral"
    assert worker("b", burst_of="p").kind == "burst" and worker("b", burst_of="p").retirable
