"""CESQL, the CloudEvents SQL expression language: its lexer and parser. Pure.

    tree = parse("type LIKE 'order.%' AND int(amount) > 100")   # or ParseError

Written from the CloudEvents spec (`cesql/spec.md` and its grammar): keywords,
function names and attribute names are case-insensitive; string literals are `'...'`
or `"..."` (`\\'` or `''` for a quote inside); integers are 32-bit. Precedence, the
tightest first: function calls, `EXISTS`, literals, attributes and parentheses; the
prefix `NOT` and `-`; `LIKE`; `IN`; `*`, `/`, `%`; `+`, `-`; comparisons; `AND`,
`OR`, `XOR` (one level, grouped from the right). `eventing.cesql` evaluates a tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
KEYWORDS = frozenset({"AND", "OR", "XOR", "NOT", "LIKE", "EXISTS", "IN", "TRUE", "FALSE"})
MAX_LENGTH = 4096  # an expression longer than this is refused before it is read
MAX_DEPTH = 64  # nesting, so a parse cannot exhaust the stack


class ParseError(ValueError):
    pass


# --- the tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: str | int | bool


@dataclass(frozen=True)
class Attribute:
    name: str  # lowercase


@dataclass(frozen=True)
class Exists:
    name: str


@dataclass(frozen=True)
class Unary:
    op: str  # "NOT" or "-"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # * / % + - = != <> < <= > >= AND OR XOR
    left: Node
    right: Node


@dataclass(frozen=True)
class Like:
    operand: Node
    pattern: str
    negated: bool


@dataclass(frozen=True)
class In:
    operand: Node
    items: tuple[Node, ...]
    negated: bool


@dataclass(frozen=True)
class Call:
    name: str  # uppercase
    args: tuple[Node, ...]


Node = Literal | Attribute | Exists | Unary | Binary | Like | In | Call


# --- the lexer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "int", "str", "word", "op", "(", ")", ",", "end"
    text: str
    value: str | int = ""
    pos: int = 0


_SPACE = re.compile(r"[ \t\r\n]+")
_WORD = re.compile(r"[A-Za-z0-9_]+")
_OPS = ("!=", "<>", ">=", "<=", "=", "<", ">", "*", "/", "%", "+", "-")


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(nxt if nxt == quote else c + nxt)
            i += 2
        elif c == quote:
            if text[i + 1 : i + 2] == quote:  # a doubled quote is one
                out.append(quote)
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise ParseError(f"a string starting at {start + 1} has no closing {quote}")


def tokens(text: str) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(text):
        space = _SPACE.match(text, i)
        if space:
            i = space.end()
            continue
        c = text[i]
        if c in "'\"":
            value, end = _string(text, i)
            out.append(Token("str", text[i:end], value, i))
            i = end
        elif c in "(),":
            out.append(Token(c, c, "", i))
            i += 1
        elif (word := _WORD.match(text, i)) is not None:
            w = word.group()
            if w.isdigit():
                out.append(Token("int", w, int(w), i))
            else:
                out.append(Token("word", w, w, i))
            i = word.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise ParseError(f"unexpected {c!r} at {i + 1}")
            out.append(Token("op", op, op, i))
            i += len(op)
    out.append(Token("end", "", "", len(text)))
    return out


# --- the parser --------------------------------------------------------------------------


def parse(text: str) -> Node:
    """The tree of a CESQL expression, or ParseError saying where and why."""
    if len(text) > MAX_LENGTH:
        raise ParseError(f"longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ParseError("empty")
    return _Parser(tokens(text)).whole()


class _Parser:
    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def is_word(self, word: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "word" and tok.text.upper() == word

    def expect(self, kind: str) -> Token:
        tok = self.take()
        if tok.kind != kind:
            raise ParseError(f"expected {kind!r} at {tok.pos + 1}, got {_shown(tok)}")
        return tok

    def whole(self) -> Node:
        node = self.logic()
        tok = self.peek()
        if tok.kind != "end":
            raise ParseError(f"unexpected {_shown(tok)} at {tok.pos + 1}")
        return node

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"nested deeper than {MAX_DEPTH}")

    def logic(self) -> Node:
        self.enter()
        left = self.comparison()
        for op in ("AND", "OR", "XOR"):
            if self.is_word(op):
                self.take()
                left = Binary(op, left, self.logic())  # grouped from the right
                break
        self.depth -= 1
        return left

    def comparison(self) -> Node:
        left = self.additive()
        while self.peek().kind == "op" and self.peek().text in (
            "=",
            "!=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
        ):
            op = self.take().text
            left = Binary(op, left, self.additive())
        return left

    def additive(self) -> Node:
        left = self.multiplicative()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            op = self.take().text
            left = Binary(op, left, self.multiplicative())
        return left

    def multiplicative(self) -> Node:
        left = self.in_()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "%"):
            op = self.take().text
            left = Binary(op, left, self.in_())
        return left

    def in_(self) -> Node:
        node = self.like()
        while self.is_word("IN") or (self.is_word("NOT") and self.is_word("IN", 1)):
            negated = self.is_word("NOT")
            if negated:
                self.take()
            self.take()
            self.expect("(")
            items = [self.logic()]
            while self.peek().kind == ",":
                self.take()
                items.append(self.logic())
            self.expect(")")
            node = In(node, tuple(items), negated)
        return node

    def like(self) -> Node:
        node = self.unary()
        while self.is_word("LIKE") or (self.is_word("NOT") and self.is_word("LIKE", 1)):
            negated = self.is_word("NOT")
            if negated:
                self.take()
            self.take()
            tok = self.take()
            if tok.kind != "str":
                raise ParseError(f"LIKE takes a string literal, got {_shown(tok)} at {tok.pos + 1}")
            node = Like(node, str(tok.value), negated)
        return node

    def unary(self) -> Node:
        self.enter()
        node = self._unary()
        self.depth -= 1
        return node

    def _unary(self) -> Node:
        tok = self.peek()
        if self.is_word("NOT"):
            self.take()
            return Unary("NOT", self.unary())
        if tok.kind == "op" and tok.text == "-":
            self.take()
            nxt = self.peek()
            if nxt.kind == "int":  # a negative literal: -2147483648 is one
                self.take()
                return Literal(_int(-int(nxt.value), nxt))
            return Unary("-", self.unary())
        if tok.kind == "op" and tok.text == "+" and self.peek(1).kind == "int":
            self.take()
            nxt = self.take()
            return Literal(_int(int(nxt.value), nxt))
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "int":
            return Literal(_int(int(tok.value), tok))
        if tok.kind == "str":
            return Literal(str(tok.value))
        if tok.kind == "(":
            node = self.logic()
            self.expect(")")
            return node
        if tok.kind == "word":
            word = tok.text.upper()
            if word in ("TRUE", "FALSE"):
                return Literal(word == "TRUE")
            if word == "EXISTS":
                name = self.take()
                if name.kind != "word" or name.text.upper() in KEYWORDS:
                    raise ParseError(f"EXISTS takes an attribute name at {name.pos + 1}")
                return Exists(_attribute(name))
            if self.peek().kind == "(":
                return self.call(tok)
            if word in KEYWORDS:
                raise ParseError(f"unexpected {word} at {tok.pos + 1}")
            return Attribute(_attribute(tok))
        raise ParseError(f"unexpected {_shown(tok)} at {tok.pos + 1}")

    def call(self, name: Token) -> Node:
        if not re.fullmatch(r"[A-Za-z][A-Za-z_]*", name.text):
            raise ParseError(f"{name.text!r} is not a function name")
        self.expect("(")
        args: list[Node] = []
        if self.peek().kind != ")":
            args.append(self.logic())
            while self.peek().kind == ",":
                self.take()
                args.append(self.logic())
        self.expect(")")
        return Call(name.text.upper(), tuple(args))


def _int(value: int, tok: Token) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise ParseError(f"{tok.text} at {tok.pos + 1} is not a 32-bit integer")
    return value


def _attribute(tok: Token) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]+", tok.text):
        raise ParseError(f"{tok.text!r} is not an attribute name (letters and digits)")
    return tok.text.lower()


def _shown(tok: Token) -> str:
    return "the end" if tok.kind == "end" else repr(tok.text)
