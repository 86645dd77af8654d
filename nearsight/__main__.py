"""``python -m nearsight`` runs the command line."""

from nearsight.cli import main

raise SystemExit(main())
