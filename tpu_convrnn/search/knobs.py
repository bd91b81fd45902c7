"""One searched quantity: ``('int'|'float', low, high[, 'log'])``, ``('choice', [...])``,
``('bool',)``; ``parse_knob`` reads the tuple (any other value is a fixed argument)."""
from __future__ import annotations

import dataclasses

KINDS = ("int", "float", "choice", "bool")


@dataclasses.dataclass(frozen=True)
class Knob:
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def contains(self, value) -> bool:
        if self.kind in ("choice", "bool"):
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and int(value) != value:
            return False
        return self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind in ("choice", "bool"):
            return f"one of {list(self.choices)}"
        return f"{self.kind} in [{self.low}, {self.high}]" + (" (log)" if self.log else "")


def parse_knob(spec, what: str):
    """A ``Knob`` for a knob tuple, or None for a fixed value; ValueError naming ``what``."""
    if not isinstance(spec, (tuple, list)) or not spec or spec[0] not in KINDS:
        return None
    kind, rest = spec[0], list(spec[1:])
    if kind == "bool":
        if rest:
            raise ValueError(f"{what}: ('bool',) takes no arguments, got {tuple(spec)}")
        return Knob("bool", choices=(False, True))
    if kind == "choice":
        if len(rest) != 1 or not isinstance(rest[0], (list, tuple)) or not rest[0]:
            raise ValueError(f"{what}: expected ('choice', [values...]) with at least one value, "
                             f"got {tuple(spec)}")
        choices = tuple(rest[0])
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError(f"{what}: choices listed twice in {list(choices)}")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise ValueError(f"{what}: choice {c!r} is not None/bool/int/float/str")
        return Knob("choice", choices=choices)
    log = len(rest) == 3 and rest[2] == "log"
    if len(rest) not in (2, 3) or (len(rest) == 3 and not log) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in rest[:2]):
        raise ValueError(f"{what}: expected ('{kind}', low, high) or ('{kind}', low, high, "
                         f"'log'), got {tuple(spec)}")
    low, high = rest[0], rest[1]
    if kind == "int" and (int(low) != low or int(high) != high):
        raise ValueError(f"{what}: int bounds must be whole numbers, got {low}, {high}")
    if not low < high:
        raise ValueError(f"{what}: empty range [{low}, {high}] (low must be below high; "
                         "fix the value instead of searching it)")
    if log and low <= 0:
        raise ValueError(f"{what}: a log range needs low > 0, got {low}")
    return Knob(kind, low, high, log)
