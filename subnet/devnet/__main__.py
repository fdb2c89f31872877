"""`python -m subnet.devnet ...` = `tessera devnet ...` (used to spawn the server process)."""

from subnet.devnet.cli import main

raise SystemExit(main())
