"""The command-line convention of the entry points: absl flags with help text, and a
``--help`` that prints the module's docstring and its flags and exits 0 (absl's own exits 1).

    if __name__ == "__main__":
        cli.run(_main, __doc__)
"""
from __future__ import annotations

import sys

HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull")


def run(main, doc: str, argv=None):
    """``absl.app.run(main)``, except that help asked for is printed and exits 0."""
    from absl import app, flags
    argv = list(sys.argv if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv[1:]):
        flags.FLAGS.mark_as_parsed()  # (parsing would run the required-flag checks)
        print(doc.strip() + "\n\nflags:\n" + flags.FLAGS.main_module_help())
        sys.exit(0)
    app.run(main, argv=argv)
