"""The network loop's cross-thread wake-up (found by `python -m bench`: closing 200
devices one after another took 150-250 ms each instead of about 1 ms)."""

from __future__ import annotations

import threading
import time

from components.network_loop import MISC_INTERVAL, NetworkLoop

def test_cross_thread_wakeups_are_never_lost() -> None:
    """Once a wake-up is lost, every later call_soon from another thread would wait for
    the keepalive tick (0.25 s): hammer the wake pipe from several threads, then check."""
    loop = NetworkLoop(name="wake-test")
    loop.start()
    try:
        def hammer() -> None:
            for _ in range(5000):
                loop.call_soon(lambda: None)
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        slow = 0
        for _ in range(10):
            ran = threading.Event()
            start = time.monotonic()
            loop.call_soon(ran.set)
            assert ran.wait(2)
            slow += time.monotonic() - start > MISC_INTERVAL / 2
            time.sleep(0.3)  # let the loop go back to sleep in select
        assert slow == 0, f"{slow} of 10 wake-ups waited for the keepalive tick"
    finally:
        loop.stop()
