"""The ``bptt`` console script's entry point, outside the ``bptt`` package on purpose.

Importing ``bptt.cli`` imports NumPy and the library (about 0.7 s); a Ctrl-C in that time would
end in a traceback, since ``bptt.cli.main`` has not started to handle it. Importing this module
costs nothing, so the interrupt is caught here from the first instant.
"""

import sys


def main() -> int:
    try:
        from bptt.cli import main as run
    except KeyboardInterrupt:
        print("bptt: interrupted", file=sys.stderr)
        return 130
    return run()
