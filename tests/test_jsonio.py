"""nsbox.jsonio agrees with the json module on what nsbox reads and writes."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from nsbox import jsonio

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


# no per-example deadline: a loaded 2-core CI machine must not turn slowness into failures
@settings(deadline=None)
@given(json_values)
def test_round_trip_matches_json(value):
    assert jsonio.loads(jsonio.dumps(value)) == json.loads(json.dumps(value))
    assert json.loads(jsonio.dumps(value)) == json.loads(json.dumps(value))


@settings(deadline=None)
@given(json_values)
def test_indent_matches_json(value):
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_reads_the_client_fixtures():
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "clients")
    if not os.path.isdir(folder):
        pytest.skip("shared/ fixtures missing")
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), "rb") as f:
                raw = f.read()
            assert jsonio.loads(raw) == json.loads(raw), name


@pytest.mark.parametrize("text", ["", "   ", "{", "[1,]", '{"a" 1}', "1 2", "nul", '"\\x"', "{'a': 1}"])
def test_invalid_documents_raise_value_error(text):
    with pytest.raises(ValueError):
        jsonio.loads(text)


def test_whitespace_and_bom():
    assert jsonio.loads(b'\xef\xbb\xbf \n {"a": [1, 2.5, true, null]} \n') == {"a": [1, 2.5, True, None]}


def test_unserializable():
    with pytest.raises(TypeError):
        jsonio.dumps({1: 2})
    with pytest.raises(TypeError):
        jsonio.dumps(object())
    with pytest.raises(ValueError):
        jsonio.dumps(float("nan"))


def test_errors_without_the_json_module_loaded():
    # nsbox never imports json; CPython 3.11's scanner then cannot raise its
    # own error for a bad object (it returned NULL without an exception)
    import subprocess
    import sys

    code = ("import sys\nfrom nsbox import jsonio\nprint('json' in sys.modules)\n"
            "for text in ('{not json', '{\"a\" 1}', '{\"a\": 1,}'):\n"
            "    try:\n        jsonio.loads(text)\n    except ValueError as e:\n        print(type(e).__name__, e)\n"
            )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "False",
        "ValueError expecting property name enclosed in double quotes at character 1",
        "ValueError expecting ':' delimiter at character 5",
        "ValueError expecting property name enclosed in double quotes at character 8",
    ]
