"""HostGate, the per-host bookkeeping of the dispatcher: at most K items of a host hold a slot,
the rest wait in FIFO order, hosts are independent, starts of a host can be spaced out, and
nothing is remembered about a host once it is idle. Time is a plain number passed in."""

from __future__ import annotations

from app.engine.hosts import HostGate


def gate_state(gate: HostGate[str]) -> tuple[dict[str, int], dict[str, object], dict[str, float]]:
    # Private attributes, read on purpose: the bookkeeping must not outlive a host's work.
    waiting: dict[str, object] = {**gate._waiting, **gate._reserved.waiting}
    return gate._active, waiting, gate._not_before


# --- slots ----------------------------------------------------------------------------------


def test_admits_up_to_k_items_of_a_host_then_queues_the_rest() -> None:
    gate: HostGate[str] = HostGate(max_per_host=3)
    admitted = [gate.admit("a.test", f"a{n}", now=0.0) for n in range(5)]
    assert admitted == [True, True, True, False, False]
    assert gate.active("a.test") == 3
    assert gate.waiting() == 2


def test_release_hands_the_slot_to_the_next_waiting_item_in_fifo_order() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1)
    assert gate.admit("a.test", "first", now=0.0)
    for name in ("second", "third", "fourth"):
        assert not gate.admit("a.test", name, now=0.0)
    handed = [gate.release("a.test", now=1.0) for _ in range(3)]
    assert handed == ["second", "third", "fourth"]
    # The slot moved with each hand-over: still exactly one active, nobody waiting.
    assert gate.active("a.test") == 1
    assert gate.waiting() == 0
    assert gate.release("a.test", now=2.0) is None
    assert gate.active("a.test") == 0


def test_release_with_nobody_waiting_frees_the_slot_for_the_next_admit() -> None:
    gate: HostGate[str] = HostGate(max_per_host=2)
    assert gate.admit("a.test", "x", now=0.0)
    assert gate.admit("a.test", "y", now=0.0)
    assert gate.release("a.test", now=0.0) is None
    assert gate.active("a.test") == 1
    assert gate.admit("a.test", "z", now=0.0)
    assert not gate.admit("a.test", "w", now=0.0)


def test_a_new_item_does_not_overtake_items_already_waiting() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1)
    assert gate.admit("a.test", "running", now=0.0)
    assert not gate.admit("a.test", "waiting", now=0.0)
    # A slot is handed over on release, so a later admit queues behind "waiting".
    assert gate.release("a.test", now=0.0) == "waiting"
    assert not gate.admit("a.test", "late", now=0.0)
    assert gate.release("a.test", now=0.0) == "late"


def test_hosts_have_independent_slots_and_queues() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1)
    assert gate.admit("a.test", "a1", now=0.0)
    assert not gate.admit("a.test", "a2", now=0.0)
    # a.test is full and has a queue; b.test is unaffected.
    assert gate.admit("b.test", "b1", now=0.0)
    assert not gate.admit("b.test", "b2", now=0.0)
    assert gate.release("b.test", now=0.0) == "b2"
    assert gate.active("a.test") == 1
    assert gate.waiting() == 1
    assert gate.release("a.test", now=0.0) == "a2"


def test_host_names_are_compared_as_given() -> None:
    # The dispatcher keys on the URL's host string: two loopback addresses are two hosts.
    gate: HostGate[str] = HostGate(max_per_host=1)
    assert gate.admit("127.0.0.1", "one", now=0.0)
    assert gate.admit("127.0.0.2", "two", now=0.0)


# --- spacing --------------------------------------------------------------------------------


def test_spacing_holds_a_free_slot_until_the_interval_since_the_last_start() -> None:
    gate: HostGate[str] = HostGate(max_per_host=8, min_interval_s=0.5)
    assert gate.admit("a.test", "first", now=10.0)
    # A slot is free, but the previous start was under 0.5 s ago.
    assert not gate.admit("a.test", "second", now=10.2)
    assert gate.next_wakeup() == 10.5
    assert gate.due(now=10.49) == []
    assert gate.due(now=10.5) == ["second"]
    assert gate.active("a.test") == 2
    assert gate.waiting() == 0


def test_due_starts_one_item_per_interval_not_the_whole_queue() -> None:
    gate: HostGate[str] = HostGate(max_per_host=8, min_interval_s=1.0)
    assert gate.admit("a.test", "a0", now=0.0)
    for n in range(1, 4):
        assert not gate.admit("a.test", f"a{n}", now=0.0)
    # Even when polled late, each start pushes the next one interval further.
    assert gate.due(now=5.0) == ["a1"]
    assert gate.next_wakeup() == 6.0
    assert gate.due(now=5.9) == []
    assert gate.due(now=6.0) == ["a2"]
    assert gate.due(now=7.0) == ["a3"]
    assert gate.next_wakeup() is None


def test_release_before_the_interval_hands_over_nothing_and_due_starts_it_later() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1, min_interval_s=1.0)
    assert gate.admit("a.test", "first", now=0.0)
    assert not gate.admit("a.test", "second", now=0.0)
    assert gate.next_wakeup() is None  # no slot free: only a release can start "second"
    assert gate.release("a.test", now=0.2) is None
    assert gate.next_wakeup() == 1.0
    assert gate.due(now=1.0) == ["second"]


def test_release_after_the_interval_hands_over_at_once() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1, min_interval_s=1.0)
    assert gate.admit("a.test", "first", now=0.0)
    assert not gate.admit("a.test", "second", now=0.0)
    assert gate.release("a.test", now=3.0) == "second"


def test_next_wakeup_is_the_earliest_over_hosts_and_ignores_hosts_without_a_free_slot() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1, min_interval_s=1.0)
    assert gate.admit("a.test", "a1", now=0.0)
    assert gate.admit("b.test", "b1", now=0.5)
    assert not gate.admit("a.test", "a2", now=0.5)
    assert not gate.admit("b.test", "b2", now=0.5)
    assert gate.next_wakeup() is None  # both hosts are full
    assert gate.release("b.test", now=0.6) is None
    assert gate.next_wakeup() == 1.5
    assert gate.release("a.test", now=0.7) is None
    assert gate.next_wakeup() == 1.0
    assert gate.due(now=1.0) == ["a2"]
    assert gate.due(now=1.5) == ["b2"]


def test_spacing_of_one_host_does_not_delay_another() -> None:
    gate: HostGate[str] = HostGate(max_per_host=8, min_interval_s=10.0)
    assert gate.admit("a.test", "a1", now=0.0)
    assert not gate.admit("a.test", "a2", now=0.1)
    assert gate.admit("b.test", "b1", now=0.1)


def test_without_spacing_a_free_slot_is_never_held() -> None:
    gate: HostGate[str] = HostGate(max_per_host=2)
    assert all(gate.admit("a.test", f"a{n}", now=0.0) for n in range(2))
    assert gate.next_wakeup() is None
    assert gate.due(now=0.0) == []


# --- bounded bookkeeping --------------------------------------------------------------------


def test_bookkeeping_is_empty_after_every_item_of_every_host_is_released() -> None:
    gate: HostGate[str] = HostGate(max_per_host=2)
    for host in ("a.test", "b.test", "c.test"):
        for n in range(5):
            gate.admit(host, f"{host}-{n}", now=0.0)
    for host in ("a.test", "b.test", "c.test"):
        while gate.active(host):
            gate.release(host, now=0.0)
    assert gate.waiting() == 0
    assert gate_state(gate) == ({}, {}, {})


def test_spacing_is_forgotten_for_an_idle_host_released_after_its_interval() -> None:
    gate: HostGate[str] = HostGate(max_per_host=2, min_interval_s=1.0)
    assert gate.admit("a.test", "a1", now=0.0)
    assert gate.release("a.test", now=2.0) is None
    assert gate_state(gate) == ({}, {}, {})


def test_spacing_of_hosts_checked_once_is_not_kept_forever() -> None:
    # The common case with spacing on: a check finishes well within the interval, and its
    # host is never checked again. Once the interval has passed, however much other work goes
    # through the gate, nothing about such a host may stay, or a service checking many
    # distinct sites grows one entry per site for ever.
    gate: HostGate[str] = HostGate(max_per_host=2, min_interval_s=1.0)
    for n in range(100):
        host = f"site{n}.test"
        now = float(n)
        assert gate.admit(host, host, now=now)
        assert gate.release(host, now=now + 0.1) is None
    # Much later, ordinary use of the gate: another host's check, and the pacer's calls.
    later = 1000.0
    assert gate.admit("other.test", "other", now=later)
    assert gate.release("other.test", now=later + 5.0) is None
    gate.due(now=later + 5.0)
    gate.next_wakeup()
    active, waiting, not_before = gate_state(gate)
    assert (active, waiting) == ({}, {})
    assert len(not_before) <= 1, f"{len(not_before)} idle hosts still remembered"


# --- the bound on all running items, and who goes next -------------------------------------


def test_no_more_items_start_than_max_total_across_hosts() -> None:
    gate: HostGate[str] = HostGate(max_per_host=8, max_total=2)
    assert gate.admit("a.test", "a1", now=0.0)
    assert gate.admit("b.test", "b1", now=0.0)
    # Both hosts have free slots, but every worker is taken.
    assert not gate.admit("c.test", "c1", now=0.0)
    assert not gate.admit("a.test", "a2", now=0.0)
    assert gate.waiting() == 2


def test_a_freed_worker_takes_the_next_host_in_round_robin_order() -> None:
    gate: HostGate[str] = HostGate(max_per_host=8, max_total=1)
    assert gate.admit("a.test", "a1", now=0.0)
    for waiting in ("a2", "a3"):
        assert not gate.admit("a.test", waiting, now=0.0)
    for waiting in ("b1", "b2"):
        assert not gate.admit("b.test", waiting, now=0.0)
    order: list[str] = []
    host = "a.test"
    while (started := gate.release(host, now=0.0)) is not None:
        order.append(started)
        host = f"{started[0]}.test"
    # Hosts alternate instead of a.test running out its whole queue first.
    assert order == ["a2", "b1", "a3", "b2"]


def test_a_host_at_its_limit_is_skipped_for_one_that_may_start() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1, max_total=2)
    assert gate.admit("a.test", "a1", now=0.0)
    assert gate.admit("b.test", "b1", now=0.0)
    assert not gate.admit("a.test", "a2", now=0.0)
    assert not gate.admit("c.test", "c1", now=0.0)
    # b1 ends: a.test still has a1 running (its one slot), so c.test goes next.
    assert gate.release("b.test", now=0.0) == "c1"


def test_purge_removes_selected_waiting_items_and_keeps_the_order_of_the_rest() -> None:
    gate: HostGate[str] = HostGate(max_per_host=1)
    assert gate.admit("a.test", "run", now=0.0)
    for item in ("x1", "keep1", "x2", "keep2"):
        assert not gate.admit("a.test", item, now=0.0)
    removed = gate.purge(lambda item: item.startswith("x"))
    assert removed == ["x1", "x2"]
    assert gate.waiting() == 2
    assert gate.release("a.test", now=0.0) == "keep1"
    assert gate.release("a.test", now=0.0) == "keep2"


def test_raising_the_bound_on_running_items_starts_waiting_ones_at_once() -> None:
    gate: HostGate[str] = HostGate(max_per_host=8, max_total=1)
    assert gate.admit("a.test", "a1", now=0.0)
    assert not gate.admit("a.test", "a2", now=0.0)
    assert not gate.admit("b.test", "b1", now=0.0)
    assert gate.set_max_total(3, now=0.0) == ["a2", "b1"]
    # Lowering it stops nothing that runs; it only holds back what would start next.
    assert gate.set_max_total(1, now=0.0) == []
    assert gate.release("a.test", now=0.0) is None


# --- reserved capacity: items that may use slots and workers the others may not --------------


def reserved_gate(**bounds: int) -> HostGate[str]:
    return HostGate(
        max_per_host=bounds.get("max_per_host", 1),
        max_total=bounds.get("max_total", 2),
        reserved_total=bounds.get("reserved_total", 1),
        reserved_per_host=bounds.get("reserved_per_host", 1),
    )


def test_a_reserved_item_starts_on_a_host_whose_ordinary_slots_are_all_taken() -> None:
    gate = reserved_gate(max_per_host=1, reserved_per_host=1)
    assert gate.admit("a.test", "job1", now=0.0)
    assert not gate.admit("a.test", "job2", now=0.0)
    assert gate.admit("a.test", "monitor1", now=0.0, reserved=True)
    # The host's reserved slot is taken too: the next reserved item waits.
    assert not gate.admit("a.test", "monitor2", now=0.0, reserved=True)
    assert gate.active("a.test") == 2


def test_a_reserved_item_starts_when_every_ordinary_worker_is_taken() -> None:
    gate = reserved_gate(max_per_host=8, max_total=2, reserved_total=1)
    assert gate.admit("a.test", "job1", now=0.0)
    assert gate.admit("b.test", "job2", now=0.0)
    assert not gate.admit("c.test", "job3", now=0.0)
    assert gate.admit("c.test", "monitor1", now=0.0, reserved=True)
    assert not gate.admit("d.test", "monitor2", now=0.0, reserved=True)


def test_ordinary_items_count_reserved_ones_running_against_their_own_bounds() -> None:
    # Reserved items may use ordinary capacity too; what they hold, ordinary items wait for,
    # so the reserve above the ordinary bounds is free whenever a reserved item comes.
    gate = reserved_gate(max_per_host=1, max_total=2, reserved_total=1, reserved_per_host=1)
    assert gate.admit("a.test", "monitor1", now=0.0, reserved=True)
    assert not gate.admit("a.test", "job1", now=0.0)
    assert gate.admit("a.test", "monitor2", now=0.0, reserved=True)
    assert gate.release("a.test", now=0.0) is None  # a.test still holds 1 = max_per_host
    assert gate.release("a.test", now=0.0) == "job1"


def test_a_freed_slot_goes_to_a_waiting_reserved_item_before_waiting_ordinary_ones() -> None:
    gate = reserved_gate(max_per_host=1, max_total=8, reserved_total=0, reserved_per_host=0)
    assert gate.admit("a.test", "job1", now=0.0)
    assert not gate.admit("a.test", "job2", now=0.0)
    assert not gate.admit("a.test", "monitor1", now=0.0, reserved=True)
    assert gate.release("a.test", now=0.0) == "monitor1"
    assert gate.release("a.test", now=0.0) == "job2"


def test_lowering_the_ordinary_bound_leaves_the_reserve_to_reserved_items() -> None:
    gate = reserved_gate(max_per_host=8, max_total=4, reserved_total=2)
    assert gate.admit("a.test", "job1", now=0.0)
    assert gate.set_max_total(1, now=0.0) == []
    assert not gate.admit("b.test", "job2", now=0.0)
    # The reserved bound stays the ordinary ceiling plus the reserve: 4 + 2.
    assert all(gate.admit(f"m{n}.test", f"m{n}", now=0.0, reserved=True) for n in range(5))
    assert not gate.admit("m5.test", "m5", now=0.0, reserved=True)


def test_purge_and_waiting_cover_reserved_items() -> None:
    gate = reserved_gate(max_per_host=1, reserved_per_host=0)
    assert gate.admit("a.test", "job1", now=0.0)
    assert not gate.admit("a.test", "monitor1", now=0.0, reserved=True)
    assert not gate.admit("a.test", "job2", now=0.0)
    assert gate.waiting() == 2
    assert gate.purge(lambda item: item == "monitor1") == ["monitor1"]
    assert gate.release("a.test", now=0.0) == "job2"
    assert gate.release("a.test", now=0.0) is None
    assert gate_state(gate) == ({}, {}, {})
