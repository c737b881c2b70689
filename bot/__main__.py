"""`python -m bot ...` is the same as the `usage-bot` console script."""

from bot.cli import main

raise SystemExit(main())
