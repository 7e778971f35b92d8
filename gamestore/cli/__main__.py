"""``python -m gamestore.cli``: the ``gamestore`` command."""
import sys

from . import main

sys.exit(main())
