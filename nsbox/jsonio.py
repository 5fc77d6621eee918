"""JSON for the hot verbs, without importing ``json``.

``import json`` costs a hot verb 8-13 ms on this kind of machine, mostly for
``re`` and ``enum``, which json.decoder imports to skip whitespace.  The
parsing itself is done by the same C scanner json uses (``_json``, CPython's
accelerator); whitespace between values is the scanner's job, and the little
left at the ends is skipped here.  The encoder covers what nsbox writes:
dicts with string keys, lists, strings, ints, floats, booleans and None.
Error paths may import json.decoder (for JSONDecodeError): they are not hot.
"""

from __future__ import annotations

import _json

_WHITESPACE = " \t\n\r"


class _Context:
    """The attributes _json.make_scanner reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())


def loads(data: str | bytes) -> object:
    """Parse one JSON document; ValueError (with the position) when it is not one."""
    if isinstance(data, (bytes, bytearray)):
        # by hand: the utf-8-sig codec is a module import of its own
        text = (data[3:] if data[:3] == b"\xef\xbb\xbf" else data).decode("utf-8")
    else:
        text = data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"expecting a value at character {e.value}") from None
    except SystemError:
        # CPython 3.11's C scanner raises some errors (a bad object key, a
        # missing ':') as json.decoder.JSONDecodeError, which it looks up in
        # sys.modules only: when json.decoder was never imported it returns
        # no exception at all.  Import it and scan again for the real one.
        import json.decoder  # noqa: F401

        return loads(text)
    except ValueError as e:  # that JSONDecodeError: the same one-line form as ours
        msg, pos = getattr(e, "msg", None), getattr(e, "pos", None)
        if not isinstance(msg, str) or pos is None:
            raise
        raise ValueError(f"{msg[:1].lower()}{msg[1:]} at character {pos}") from None
    rest = text[end:].lstrip(_WHITESPACE)
    if rest:
        raise ValueError(f"extra data at character {len(text) - len(rest)}")
    return value


def dumps(value: object, indent: int | None = None) -> str:
    parts: list[str] = []
    _encode(value, parts, indent, 0)
    return "".join(parts)


def _encode(value: object, out: list[str], indent: int | None, level: int) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not valid JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner, sep, close = _layout(indent, level)
        out.append("{" + inner)
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if i:
                out.append(sep)
            out.append(_json.encode_basestring_ascii(key) + ": ")
            _encode(item, out, indent, level + 1)
        out.append(close + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner, sep, close = _layout(indent, level)
        out.append("[" + inner)
        for i, item in enumerate(value):
            if i:
                out.append(sep)
            _encode(item, out, indent, level + 1)
        out.append(close + "]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _layout(indent: int | None, level: int) -> tuple[str, str, str]:
    """(after the opening bracket, between items, before the closing one)."""
    if indent is None:
        return "", ", ", ""
    pad = "\n" + " " * (indent * (level + 1))
    return pad, "," + pad, "\n" + " " * (indent * level)
