"""Issue 7's chaos run, bounded: 30 devices of 15 users in 5 processes behind a
freezable proxy; hosts SIGKILLed and restarted, links frozen and cut, the broker
SIGKILLed and restarted without and with persistence. After each round every watcher
and a late joiner equal the truth (see chaos/controller.py). `python -m chaos --soak S`
runs the same for longer."""

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
