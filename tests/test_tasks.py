# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import re

import pytest

from trl_mos.tasks import (
    SKILL_NAMES,
    check_skill_answer,
    make_arithmetic_problems,
    make_code_tasks,
    make_skill_datasets,
    normalize_answer,
)


def _rows(dataset):
    return [tuple(sorted(row.items())) for row in dataset]


def test_skill_datasets_are_deterministic_per_seed():
    a, b, c = make_skill_datasets(seed=0), make_skill_datasets(seed=0), make_skill_datasets(seed=1)
    for split in ("train", "test"):
        assert _rows(a[split]) == _rows(b[split])
        assert _rows(a[split]) != _rows(c[split])


def test_skill_datasets_are_imbalanced_with_disjoint_test_split():
    data = make_skill_datasets(seed=0)
    names = data["train"].features["skill"].names
    assert names == SKILL_NAMES == ["copy", "reverse", "sort", "add"]
    counts = {name: data["train"]["skill"].count(i) for i, name in enumerate(names)}
    assert counts == {"copy": 4000, "reverse": 1000, "sort": 200, "add": 100}  # 40:10:2:1
    assert all(data["test"]["skill"].count(i) == 100 for i in range(4))
    assert not set(data["train"]["prompt"]) & set(data["test"]["prompt"])
    assert len(set(data["test"]["prompt"])) == len(data["test"])
    assert set(data["train"].column_names) == {"prompt", "completion", "answer", "skill"}


def test_changing_one_skill_size_leaves_the_others_alone():
    small = make_skill_datasets(seed=0, sizes={"copy": 10, "add": 5})
    other = make_skill_datasets(seed=0, sizes={"copy": 10, "add": 7})
    assert small["train"].features["skill"].names == ["copy", "add"]
    copy_a = [r["prompt"] for r in small["train"] if r["skill"] == 0]
    copy_b = [r["prompt"] for r in other["train"] if r["skill"] == 0]
    assert copy_a == copy_b


@pytest.mark.parametrize(
    "prompt, completion",
    [("copy: q w e =", "q w e"), ("reverse: q w e =", "e w q"), ("sort: 3 1 2 =", "1 2 3"), ("add: 12 + 30 =", "42")],
)
def test_skill_examples_are_correct(prompt, completion):
    data = make_skill_datasets(seed=0)
    for row in data["train"].select(range(0, len(data["train"]), 50)):
        skill = SKILL_NAMES[row["skill"]]
        body = row["prompt"].split(": ", 1)[1].rstrip(" =")
        assert row["completion"] == " " + row["answer"]
        if skill == "copy":
            assert row["answer"] == body
        elif skill == "reverse":
            assert row["answer"] == " ".join(reversed(body.split()))
        elif skill == "sort":
            assert row["answer"] == " ".join(sorted(body.split()))
        else:
            a, b = map(int, body.split(" + "))
            assert int(row["answer"]) == a + b
    assert check_skill_answer(" " + completion, completion)


def test_skill_checker_accepts_true_and_rejects_wrong_answers():
    assert check_skill_answer(" c b a", "c b a")
    assert check_skill_answer("c  b   a \n\nextra line", "c b a")
    assert not check_skill_answer(" c b", "c b a")
    assert not check_skill_answer(" c b a a", "c b a")
    assert not check_skill_answer("", "c b a")
    assert not check_skill_answer(" 43", "42")
    assert normalize_answer("   ") == ""


def test_unknown_skill_is_rejected():
    with pytest.raises(ValueError, match=r"Unknown skill\(s\) \['juggle'\]"):
        make_skill_datasets(sizes={"juggle": 3})


def test_arithmetic_problems_are_deterministic_disjoint_and_correct():
    a, b = make_arithmetic_problems(seed=0), make_arithmetic_problems(seed=0)
    c = make_arithmetic_problems(seed=1)
    assert list(a) == ["train", "validation", "test"]
    assert [len(a[s]) for s in a] == [512, 64, 128]
    for split in a:
        assert _rows(a[split]) == _rows(b[split])
        assert _rows(a[split]) != _rows(c[split])
    prompts = [set(a[s]["prompt"]) for s in a]
    assert not (prompts[0] & prompts[1]) and not (prompts[0] & prompts[2]) and not (prompts[1] & prompts[2])
    for row in a["train"]:
        assert row["prompt"].startswith("Question: ") and row["prompt"].endswith("\nAnswer:")
        boxed = re.search(r"\\boxed\{(-?\d+)\}\.$", row["completion"])
        assert boxed and boxed.group(1) == row["solution"]
        # every arithmetic step of the worked solution is right
        for x, op, y, z in re.findall(r"(\d+) ([-+*]) (\d+) = (-?\d+)", row["completion"]):
            assert eval(f"{x} {op} {y}") == int(z)


def test_arithmetic_answers_pass_math_verify():
    from math_verify import parse, verify

    row = make_arithmetic_problems(seed=0)["test"][0]
    assert verify(parse(row["solution"]), parse(row["completion"]))
    assert not verify(parse(row["solution"]), parse(f"The answer is \\boxed{{{int(row['solution']) + 1}}}."))


def _run_function_task(row, body):
    namespace = {}
    exec(row["prompt"] + body + "\n" + row["test"], namespace)
    namespace["check"](namespace[row["entry_point"]])


def test_code_function_tasks_canonical_solutions_pass_and_wrong_ones_fail():
    tasks = make_code_tasks("function")
    assert len(tasks) >= 8
    assert {"prompt", "entry_point", "test", "canonical_solution"} <= set(tasks.column_names)
    for row in tasks:
        _run_function_task(row, row["canonical_solution"])
        with pytest.raises(AssertionError):
            _run_function_task(row, "    return None\n")


def test_code_stdio_tasks_canonical_solutions_pass(tmp_path):
    import subprocess
    import sys

    tasks = make_code_tasks("stdio")
    assert {"prompt", "inputs", "outputs", "canonical_solution"} <= set(tasks.column_names)
    for i, row in enumerate(tasks):
        program = tmp_path / f"p{i}.py"
        program.write_text(row["canonical_solution"])
        assert len(row["inputs"]) == len(row["outputs"]) >= 2
        for stdin, expected in zip(row["inputs"], row["outputs"], strict=True):
            out = subprocess.run([sys.executable, str(program)], input=stdin, capture_output=True, text=True)
            assert out.stdout == expected


def test_unknown_code_task_kind_is_rejected():
    with pytest.raises(ValueError, match="Unknown kind 'sql'"):
        make_code_tasks("sql")
