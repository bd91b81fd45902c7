"""The command-line convention of the entry points: absl flags with help text, a ``--help``
that prints the module's docstring and its flags and exits 0, and a mistake in the flags as one
line (``error: ...``) and exit 2.

    if __name__ == "__main__":
        cli.run(_main, __doc__)                     # absl's global flags (tpu_convrnn.main)

    FLAGS = flags.FlagValues()                      # a module's own flag set (the others)
    flags.DEFINE_string("output", None, "the picture", flag_values=FLAGS)

    def main(argv=None) -> int:
        return cli.main(_run, FLAGS, __doc__, argv)  # _run(args) -> exit code

    def _run(args):
        if args.output is None:
            raise cli.UsageError("--output is needed")  # one line, exit 2
"""
from __future__ import annotations

import sys
import textwrap
from types import SimpleNamespace

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


def help_text(flag_values, doc: str) -> str:
    """``doc`` and every flag of ``flag_values`` with its help text and default."""
    lines = []
    for name in sorted(flag_values):
        flag = flag_values[name]
        default = "" if flag.default in (None, [], False) else f" (default: {flag.default!r})"
        text = " ".join(flag.help.split())  # (absl appends an indented line to some)
        lines.append(textwrap.fill(f"--{name}: {text}{default}", 96, initial_indent="  ",
                                   subsequent_indent="      "))
    return doc.strip() + "\n\nflags:\n" + "\n".join(lines)


def parse_flags(flag_values, argv) -> tuple:
    """``argv`` (no program name) parsed afresh into ``flag_values``; returns (the flags'
    values as attributes, the positional arguments). ValueError, one line, for an unknown or
    malformed flag or a required one missing."""
    from absl import flags
    flag_values.unparse_flags()  # (a second call in one process starts from the defaults)
    try:
        rest = flag_values(["prog"] + list(argv))
    except flags.Error as e:
        raise ValueError(str(e).strip().splitlines()[0]) from None
    return SimpleNamespace(**{name: flag_values[name].value for name in flag_values}), rest[1:]


class UsageError(ValueError):
    """A mistake of the caller's (a flag's value, a missing flag, a file): ``main`` prints it
    as one line and exits 2."""


def main(run_fn, flag_values, doc: str, argv=None, positional: bool = False, *,
         parse=None, help_fn=None, usage_errors=(UsageError,)) -> int:
    """The entry point of a module with its own flag set: ``--help`` (printed, 0), a mistake
    in the flags (one line on stderr, 2), else ``run_fn(args)`` (``run_fn(args, rest)`` with
    ``positional``) and its exit code; ``usage_errors`` raised by it are one line and 2 too.
    A module with commands gives its own ``parse(argv) -> args`` (ValueError for a mistake)
    and ``help_fn() -> text``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv):
        print(help_fn() if help_fn else help_text(flag_values, doc))
        return 0
    try:
        args, rest = (parse(argv), []) if parse else parse_flags(flag_values, argv)
        if rest and not positional:
            raise ValueError(f"unexpected arguments {rest}")
    except ValueError as e:
        return _usage(e)
    try:
        return run_fn(args, rest) if positional else run_fn(args)
    except usage_errors as e:
        return _usage(e)


def _usage(error) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2
