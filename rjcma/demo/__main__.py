"""``python -m rjcma.demo``: generate the demo dataset (see :func:`rjcma.demo.main`)."""

from rjcma.demo import main

raise SystemExit(main())
