import sys

from stcbench.cli import main

sys.exit(main())
