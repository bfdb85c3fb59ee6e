"""`python -m kdns` runs the same entry point as the `kdns` console script."""

from kdns.cli import main

raise SystemExit(main())
