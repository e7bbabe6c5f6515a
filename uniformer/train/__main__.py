"""``python -m uniformer.train``: see ``uniformer.train.cli``."""
import sys

from uniformer.train.cli import main

sys.exit(main())
