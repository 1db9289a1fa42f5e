"""`python -m sslsan ...` (and `torchrun -m sslsan train ...`)."""

import sys

from sslsan.cli import main

if __name__ == "__main__":
    sys.exit(main())
