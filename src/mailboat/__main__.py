"""`python -m mailboat` runs the command line."""

from mailboat.cli.main import main

raise SystemExit(main())
