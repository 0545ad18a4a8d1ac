"""A safe parser for the Python-literal subset found in .npy headers.

Only dicts, lists, tuples, strings, ints, True, False and None are accepted.
A single regular expression tokenizes; a recursive descent builds the value.
Time is linear in the text and bounded: the tokenizer stops at the first
token past ``MAX_DEPTH`` levels of nesting or past ``MAX_TOKENS`` tokens, so
a hostile header costs little to refuse.  Nothing is evaluated.
"""

from __future__ import annotations

import re

MAX_DEPTH = 32
MAX_TOKENS = 100_000  # a structured dtype of ~16,000 fields; numpy itself refuses headers over 10,000 bytes

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<str>'[^'\\]*(?:\\.[^'\\]*)*'|"[^"\\]*(?:\\.[^"\\]*)*")  # unrolled: no state per character
    | (?P<int>-?(?:0|[1-9][0-9]{0,18}))L?
    | (?P<name>True|False|None)\b
    | (?P<punct>[{}()\[\],:])
    )""", re.VERBOSE | re.DOTALL)
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}
_NAMES = {"True": True, "False": False, "None": None}
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = frozenset(_CLOSE.values())


class LiteralError(ValueError):
    """The text is not a literal of the accepted subset."""


def parse(text: str):
    """The value of the literal ``text``.

    Raises
    ------
    LiteralError
        Anything outside the subset: names, calls, operators, deep nesting, trailing text.
    """
    tokens = _tokenize(text)
    value, end = _value(tokens, 0, 0)
    if end != len(tokens):
        raise LiteralError(f"unexpected {tokens[end][1]!r} after the literal")
    return value


def _tokenize(text: str) -> list[tuple[str, object]]:
    tokens: list[tuple[str, object]] = []
    pos, end, depth = 0, len(text), 0
    match = _TOKEN.match
    while pos < end:
        if len(tokens) >= MAX_TOKENS:
            raise LiteralError(f"more than {MAX_TOKENS} tokens, more than mmio parses (numpy refuses headers "
                               "over 10,000 bytes unless told otherwise)")
        m = match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            raise LiteralError(f"unexpected text at position {pos}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        if kind == "str":
            tokens.append(("value", _unescape(raw[1:-1])))
        elif kind == "int":
            tokens.append(("value", int(raw)))
        elif kind == "name":
            tokens.append(("value", _NAMES[raw]))
        else:
            depth += (raw in _CLOSE) - (raw in _CLOSERS)
            if depth > MAX_DEPTH:
                raise LiteralError(f"nested deeper than {MAX_DEPTH} levels")
            tokens.append(("punct", raw))
        pos = m.end()
    return tokens


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body

    def one(m: re.Match) -> str:
        code = m.group(1)
        if code[0] in "xuU" and len(code) > 1:
            value = int(code[1:], 16)
            if value > 0x10FFFF:
                raise LiteralError(f"escape \\{code} is not a character")
            return chr(value)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        raise LiteralError(f"unsupported escape \\{code}")

    return _ESCAPE.sub(one, body)


def _value(tokens, i: int, depth: int):
    if i >= len(tokens):
        raise LiteralError("the literal ends too early")
    kind, tok = tokens[i]
    if kind == "value":
        return tok, i + 1
    if tok not in _CLOSE:
        raise LiteralError(f"unexpected {tok!r}")
    if depth >= MAX_DEPTH:
        raise LiteralError(f"nested deeper than {MAX_DEPTH} levels")
    return _container(tokens, i + 1, tok, depth + 1)


def _container(tokens, i: int, opener: str, depth: int):
    closer = _CLOSE[opener]
    items: list = []
    trailing_comma = False
    while True:
        if i >= len(tokens):
            raise LiteralError(f"missing {closer!r}")
        if tokens[i] == ("punct", closer):
            i += 1
            break
        if items and not trailing_comma:
            raise LiteralError(f"expected ',' or {closer!r}")
        item, i = _value(tokens, i, depth)
        if opener == "{":
            if i >= len(tokens) or tokens[i] != ("punct", ":"):
                raise LiteralError("expected ':' in a dict")
            value, i = _value(tokens, i + 1, depth)
            try:
                item = (item, value)
                hash(item[0])
            except TypeError:
                raise LiteralError("unhashable dict key") from None
        items.append(item)
        trailing_comma = i < len(tokens) and tokens[i] == ("punct", ",")
        if trailing_comma:
            i += 1
    if opener == "{":
        return dict(items), i
    if opener == "[":
        return items, i
    if len(items) == 1 and not trailing_comma:
        return items[0], i  # a parenthesised value, not a tuple
    return tuple(items), i
