"""`python -m btseg` runs the command-line interface."""

from btseg.cli import main

raise SystemExit(main())
