"""`python -m vlens …` (what `torchrun -m vlens run …` and `accelerate launch -m vlens run …` call)."""

import sys

from vlens.cli import main

sys.exit(main())
