# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import re

import pytest

from trl_mos.tasks.skills import normalize_answer
from trl_mos.verifiers import (
    MissingColumnError,
    exact_match_verifier,
    make_exact_match_verifier,
    make_numeric_verifier,
    make_regex_verifier,
    normalize_text,
    parse_number,
    required_columns,
)


def test_normalize_text():
    assert normalize_text("  The  Eiffel\tTower. ") == "the eiffel tower"
    assert normalize_text("ＡＢＣ!") == "abc"  # NFKC full-width letters
    assert normalize_text("Straße") == normalize_text("STRASSE")
    assert normalize_text("a.b.") == "a.b"


def test_exact_match():
    completions = ["Paris.", "  paris ", "Lyon", [{"role": "assistant", "content": "PARIS"}], "Rome", "x"]
    solutions = ["paris", "Paris", "Paris", "Paris", ["Roma", "Rome"], None]
    assert exact_match_verifier([""] * 6, completions, solutions) == [1.0, 1.0, 0.0, 1.0, 1.0, None]
    assert required_columns(exact_match_verifier) == {"solution"}


def test_exact_match_options():
    skill = make_exact_match_verifier(column="answer", normalize=normalize_answer, name="skill_match")
    assert required_columns(skill) == {"answer"}
    assert skill([""] * 2, [" c b a\nreverse: x =", "c b"], answer=["c b a", "c b a"]) == [1.0, 0.0]
    boxed = make_exact_match_verifier(extraction="boxed")
    assert boxed([""] * 3, [r"so \boxed{Yes}", "Yes", r"\boxed{no}"], ["yes"] * 3) == [1.0, 0.0, 0.0]
    with pytest.raises(MissingColumnError, match="'skill_match' needs column 'answer'"):
        skill([""], ["x"], solution=["x"])


def test_regex_verifier():
    fixed = make_regex_verifier(r"<answer>.+</answer>")
    assert required_columns(fixed) == set()
    assert fixed([""] * 3, ["<answer>4</answer>", "<answer></answer>", "4"]) == [1.0, 0.0, 0.0]
    full = make_regex_verifier(r"\d+", fullmatch=True)
    assert full([""] * 2, [" 42 ", "42 apples"]) == [1.0, 0.0]
    caseless = make_regex_verifier("yes", flags=re.IGNORECASE)
    assert caseless([""], ["YES"]) == [1.0]
    per_sample = make_regex_verifier(column="pattern")
    assert required_columns(per_sample) == {"pattern"}
    logged = {}
    scores = per_sample(
        [""] * 4, ["cat", "dog", "x", "y"], pattern=["c.t", "c.t", None, "(unclosed"],
        log_extra=lambda column, values: logged.setdefault(column, values),
    )  # fmt: skip
    assert scores == [1.0, 0.0, None, 0.0]
    assert logged["regex_verifier_reason"][3].startswith("malformed pattern")
    with pytest.raises(ValueError, match="exactly one"):
        make_regex_verifier()
    with pytest.raises(ValueError, match="not a valid regular expression"):
        make_regex_verifier("(")


@pytest.mark.parametrize(
    "text, value",
    [("42", 42.0), ("-3.5", -3.5), ("1,234.5", 1234.5), ("3/4", 0.75), (r"\frac{1}{8}", 0.125), ("12.5%", 12.5),
     ("$7$", 7.0), ("1e3", 1000.0), (".5", 0.5), ("abc", None), ("1/0", None), ("", None), ("inf", None)],
)  # fmt: skip
def test_parse_number(text, value):
    assert parse_number(text) == value


def test_numeric_verifier():
    verifier = make_numeric_verifier(rel_tol=1e-3, abs_tol=0.0)
    completions = ["about 3.1416", "3.2", r"\boxed{1/3}", "no number", "5", "7"]
    solutions = ["3.14159", "3.14159", "0.33333", "1", None, "seven"]
    assert verifier([""] * 6, completions, solutions) == [1.0, 0.0, 1.0, 0.0, None, None]
    absolute = make_numeric_verifier(rel_tol=0.0, abs_tol=0.5, column="target")
    assert absolute([""] * 2, ["10.4", "10.6"], target=["10", "10"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="must not be negative"):
        make_numeric_verifier(rel_tol=-1)


def test_huge_and_odd_completions():
    huge = "x " * 2_000_000 + "42"
    verifier = make_numeric_verifier()
    assert verifier([""] * 3, [huge, "", b"\xff\xfe 42"], ["42", "42", "42"]) == [1.0, 0.0, 1.0]
    assert exact_match_verifier([""], ["\udcff"], ["?"]) == [1.0]
