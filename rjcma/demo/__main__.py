"""``python -m rjcma.demo``: generate the demo dataset (see :mod:`rjcma.demo.cli`)."""

from rjcma.demo.cli import main

raise SystemExit(main())
