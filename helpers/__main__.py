"""``python -m helpers``: see :mod:`helpers.cli`."""

import sys

try:  # importing the commands takes a second or so (the tinker SDK): Ctrl-C then is no traceback either
    from .cli import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted while starting: nothing was done\n")  # cli.STARTING_INTERRUPTED
    sys.exit(130)

if __name__ == "__main__":
    sys.exit(main())
