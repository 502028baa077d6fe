"""The `$filter` subset alerts_v2 documents, compiled to a predicate over an alert's row.

Filterable (per the List alerts_v2 page): assignedTo, classification, determination, createdDateTime,
lastUpdateDateTime, severity, serviceSource, status. Operators eq ne gt ge lt le, `and`, `or`, `not` and
parentheses. DateTimeOffset literals are unquoted, strings single-quoted (`''` escapes a quote). Enums compare by
declaration order, as OData does. Anything else is a 400, worded like Graph's.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Callable

from simulator import enums
from simulator.timefmt import parse_literal

Row = tuple  # see ROW_FIELDS
Predicate = Callable[[Row], bool]

# Row layout shared with the tenant: (created, lastUpdate, serviceSource, status, severity, classification,
# determination, assignedTo); enums as ordinals, times as ticks.
ROW_FIELDS = {
    "createdDateTime": (0, None), "lastUpdateDateTime": (1, None),
    "serviceSource": (2, enums.SERVICE_SOURCE), "status": (3, enums.STATUS), "severity": (4, enums.SEVERITY),
    "classification": (5, enums.CLASSIFICATION), "determination": (6, enums.DETERMINATION),
    "assignedTo": (7, ()),
}
# Enum member -> ordinal, per enum field; rows hold ordinals so comparisons are integer compares.
ORDINALS = {name: {m: i for i, m in enumerate(members)} for name, (_, members) in ROW_FIELDS.items() if members}

_OPS = {"eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
        "le": operator.le}
_OP_NAMES = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual", "lt": "LessThan",
             "le": "LessThanOrEqual"}
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[^\s(),']+))")


class FilterError(ValueError):
    """The message is what Graph puts in error.message of its 400."""


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str   # "str", "punct", "word"
    text: str


def _tokenize(text: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            if text[pos:].strip():
                raise FilterError(f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
            break
        kind = match.lastgroup or "word"
        tokens.append(_Tok(kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise FilterError(f"Invalid filter clause: unexpected end of expression in '{self.text}'.")
        self.pos += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise FilterError(f"Invalid filter clause: syntax error at '{self.peek().text}' in '{self.text}'.")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("or"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(p(row) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.keyword("and"):
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return lambda row: first(row) and second(row)
        return lambda row: all(p(row) for p in parts)

    def negation(self) -> Predicate:
        if self.keyword("not"):
            inner = self.negation()
            return lambda row: not inner(row)
        tok = self.peek()
        if tok is not None and tok.kind == "punct" and tok.text == "(":
            self.take()
            inner = self.disjunction()
            closing = self.take()
            if closing.text != ")":
                raise FilterError(f"Invalid filter clause: ')' expected at '{closing.text}' in '{self.text}'.")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        name = self.take()
        if name.kind != "word" or "(" in name.text:
            raise FilterError(f"Invalid filter clause: syntax error at '{name.text}' in '{self.text}'.")
        following = self.peek()
        if following is not None and following.text == "(":
            raise FilterError(f"Invalid filter clause: the function '{name.text}' is not supported on alerts_v2.")
        if name.text not in ROW_FIELDS:
            raise FilterError(f"Invalid filter clause: The property '{name.text}' cannot be used in the $filter "
                              f"query option. Supported: {', '.join(ROW_FIELDS)}.")
        op = self.take()
        if op.text not in _OPS:
            raise FilterError(f"Invalid filter clause: operator '{op.text}' is not supported; use eq, ne, gt, ge, "
                              "lt or le.")
        literal = self.take()
        index, members = ROW_FIELDS[name.text]
        value = self.value(name.text, members, op.text, literal)
        compare = _OPS[op.text]
        if members == ():
            # assignedTo: null only equals null; ordering against null is false, as in OData.
            if op.text in ("eq", "ne") or value is None:
                return lambda row: compare(row[index], value)
            return lambda row: row[index] is not None and compare(row[index], value)
        return lambda row: compare(row[index], value)

    def value(self, field: str, members: tuple[str, ...] | None, op: str, literal: _Tok) -> object:
        if members is None:
            if literal.kind == "str":
                raise FilterError(
                    "A binary operator with incompatible types was detected. Found operand types "
                    f"'Edm.DateTimeOffset' and 'Edm.String' for operator kind '{_OP_NAMES[op]}'.")
            try:
                return parse_literal(literal.text)
            except ValueError:
                raise FilterError(f"Invalid filter clause: '{literal.text}' is not a valid DateTimeOffset "
                                  "literal.") from None
        if literal.kind == "word" and literal.text == "null" and members == ():
            return None
        if literal.kind != "str":
            raise FilterError(f"Invalid filter clause: '{literal.text}' must be a quoted string for '{field}'.")
        text = literal.text[1:-1].replace("''", "'")
        if members == ():
            return text
        ordinal = ORDINALS[field].get(text)
        if ordinal is None:
            raise FilterError(f"The string '{text}' is not a valid enumeration type constant.")
        return ordinal


def compile_filter(text: str | None) -> Predicate | None:
    if text is None or not text.strip():
        return None
    return _Parser(text).parse()
