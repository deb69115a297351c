"""Issue 7's chaos run, bounded: 30 devices of 15 users in 5 processes behind a
freezable proxy; hosts SIGKILLed and restarted, links frozen and cut, the broker
SIGKILLed and restarted without and with persistence. After each round every watcher
and a late joiner equal the truth (see chaos/controller.py). `python -m chaos --soak S`
runs the same for longer; `--cluster` on a 3-node NATS cluster (chaos/cluster.py)."""

from __future__ import annotations

import json

import pytest

from chaos.controller import REANNOUNCE, Config, run

pytestmark = pytest.mark.integration


def test_chaos_rounds_leave_no_ghost_no_false_offline_and_no_flicker() -> None:
    cfg = Config(rounds=4, seed=7, keepalive=2, grace=2.0)  # rounds 2 and 4 restart the broker
    figures = run(cfg, log=lambda line: None)
    print(json.dumps(figures.to_json()))
    assert figures.failures == []
    assert (figures.ghosts, figures.false_offlines, figures.flickers, figures.stale_typing, figures.stale_cursors) == (0, 0, 0, 0, 0)
    assert figures.rounds == 4 and figures.checks >= 4 * 3
    assert figures.host_kills >= 2 and figures.freezes >= 2 and figures.cuts >= 2
    assert figures.broker_restarts == 2 and figures.broker_restarts_persistent == 1
    assert all(t <= REANNOUNCE for t in figures.reannounce_s) and len(figures.reannounce_s) == 1
    assert all(t <= REANNOUNCE + cfg.grace for t in figures.ghost_cleared_s) and len(figures.ghost_cleared_s) == 1


@pytest.mark.cluster
def test_chaos_rounds_on_a_nats_cluster_leave_no_ghost_no_false_offline_and_no_flicker() -> None:
    """`python -m chaos --cluster`, bounded: a node killed, a host killed with its node,
    a host killed alone, each followed by a restart, then everything back and checked
    once more. NATS configured as docs/BROKERS.md says (`qos1_subscriptions` and
    `qos1_publishes` false): without it, NATS closed the connections of live devices
    that published while JetStream re-elected a dead node's leaders, and their wills
    showed them offline."""
    from chaos.cluster import CLUSTER_LEASE, run_cluster

    cfg = Config(rounds=3, seed=5, devices=9, users=6, hosts=3, keepalive=2, grace=2.0, lease=CLUSTER_LEASE)
    figures = run_cluster(cfg, log=lambda line: None)
    print(json.dumps(figures.to_json()))
    assert figures.failures == []
    assert (figures.ghosts, figures.false_offlines, figures.flickers, figures.stale_typing, figures.stale_cursors) == (0, 0, 0, 0, 0)
    assert figures.node_kills == 2 and figures.host_kills == 2 and figures.checks >= 4 * 4
    assert figures.bounds_kept(cfg.grace, lease=CLUSTER_LEASE)
    assert len(figures.lapse_s) == 1 and len(figures.failover_s) >= 1
