"""The demo page, counted: each run of this Streamlit script (first render or rerun)
appends one line to $BENCH_RERUN_LOG before running demo_page.py unchanged."""

import os
import runpy
from pathlib import Path

with open(os.environ["BENCH_RERUN_LOG"], "a") as log:
    log.write("run\n")
runpy.run_path(str(Path(__file__).resolve().parent.parent / "demo_page.py"), run_name="__main__")
