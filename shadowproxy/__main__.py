"""``python -m shadowproxy`` is the ``shadowproxy`` command."""

import sys

from shadowproxy.cli import main

sys.exit(main())
