"""``python -m nas.cli``: the same as the ``hwnas`` console script."""
import sys

from nas.cli import main

sys.exit(main())
