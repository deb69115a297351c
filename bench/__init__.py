"""Benchmarks of the presence kit: `python -m bench [--quick] [--out docs/BENCHMARKS.md]`.

Every figure is a median over repeated runs on a machine that may be shared and busy,
and every speed is also given as a ratio to a baseline (bare paho-mqtt, or the bounds
and anchors of DESIGN.md) measured in the same run. See bench/__main__.py.
"""
