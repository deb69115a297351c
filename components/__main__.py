"""`python -m components ...`: see components.cli."""

from .cli import main

raise SystemExit(main())
