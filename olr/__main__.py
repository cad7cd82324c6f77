import sys

from olr.cli import main

sys.exit(main())
