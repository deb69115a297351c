"""Chaos runs for the presence kit (issue 7): headless devices in several processes
behind a freezable TCP proxy, a controller that kills, freezes, cuts and restarts them
and the broker, and checks after each round that every watcher shows the truth.

    python -m chaos --rounds 4          # a bounded run (what tests/test_chaos.py does)
    python -m chaos --soak 600          # rounds until 600 s have passed

Loopback only (127.0.0.1); every loop is bounded in rounds and time; the controller ends
only the processes it started, by pid.
"""
