"""Every number a verdict shows beside its conditions has words a learner reads.

A verdict lists the numbers a lab's ``conditions`` read; a name in code there
(``aggressive.drop_ci_low``) says nothing to a learner. No model is loaded: each lab is built
(building trains nothing) and its ``conditions`` run on stand-in numbers that record which
names they read.
"""

import importlib
import pkgutil
import random
import re

import pytest

import ftlab.labs
from ftlab.labs import Lab, LabResult, Verdict
from ftlab.labs.base import _Reads


def _lab_classes() -> list[type[Lab]]:
    """Every lab in ``ftlab.labs`` that states a lesson (overrides ``conditions``)."""
    for mod in pkgutil.iter_modules(ftlab.labs.__path__):
        importlib.import_module(f"ftlab.labs.{mod.name}")
    found, todo = [], list(Lab.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("ftlab.labs.") and "conditions" in vars(cls):
            found.append(cls)
    return sorted(set(found), key=lambda c: c.__name__)


LABS = _lab_classes()

# Comparisons of stand-in numbers answer from this stream: True throughout, False
# throughout, then seeded coin flips, so every operand of ``and`` / ``or`` gets read.
TRIALS = 64


class _Number(float):
    """1.0 whose comparisons answer ``_Number.answer()`` and whose arithmetic stays a
    ``_Number``: a condition's ``a < b and c > d`` then reads ``c`` and ``d`` on some trial."""

    answer = staticmethod(lambda: True)

    def _cmp(self, other) -> bool:
        return _Number.answer()

    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __ne__ = _cmp
    __hash__ = float.__hash__


def _arith(name):
    def op(self, *other):
        return _Number(getattr(float, name)(self, *other))
    return op


for _op in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "neg",
            "abs", "pos"):
    setattr(_Number, f"__{_op}__", _arith(f"__{_op}__"))


class _AnyNumbers(_Reads):
    """A seed's numbers holding every name: any name read is a ``_Number`` (so optional
    conditions, behind ``if name in m``, are read too)."""

    def __init__(self) -> None:
        super().__init__({})

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __missing__(self, key: str) -> float:
        return _Number(1.0)


def names_read(lab: Lab) -> list[str]:
    """Every number ``lab.conditions`` reads, over ``TRIALS`` runs on stand-in numbers."""
    rng, read = random.Random(0), {}
    answers = [lambda: True, lambda: False] + [lambda: rng.random() < 0.5] * (TRIALS - 2)
    try:
        for answer in answers:
            _Number.answer = staticmethod(answer)
            seen = _AnyNumbers()
            conds = lab.conditions(seen)
            assert conds and all(isinstance(k, str) for k in conds)
            read.update(dict.fromkeys(seen.read))
    finally:
        _Number.answer = staticmethod(lambda: True)
    return list(read)


def test_every_lab_of_the_course_is_found():
    assert {c.__name__ for c in LABS} >= {"Overfitting", "FormatMismatch", "Collapse",
                                          "Regression", "RewardHacking", "MethodsLab"}


def test_the_stand_in_reads_both_sides_of_and_and_or():
    class Both(Lab):
        arms = {"a": {}}

        def conditions(self, m):
            return {"x": m["a.one"] < 0 and m["a.two"] > 0, "y": m["a.three"] > 0 or m["four"]}

    assert sorted(names_read(Both(preset="cpu"))) == ["a.one", "a.three", "a.two", "four"]


@pytest.mark.parametrize("lab_class", LABS, ids=lambda c: c.__name__)
def test_every_number_a_lab_checks_has_words_and_no_two_share_them(lab_class):
    lab = lab_class(preset="cpu")
    read = names_read(lab)
    assert read, "the conditions read no number: the stand-in did not reach them"
    labels = {name: lab.number_label(name) for name in read}
    unnamed = [name for name, words in labels.items() if words == name]
    assert not unnamed, f"{lab_class.__name__}.number_names lacks words for {unnamed}"
    assert all(words.strip() and "\n" not in words for words in labels.values())
    shared = {w for w in labels.values() if list(labels.values()).count(w) > 1}
    assert not shared, f"{lab_class.__name__}: two numbers read as {shared}"


def test_a_label_is_the_arm_then_the_words_for_the_rest_and_a_full_name_wins():
    class Named(Lab):
        arms = {"hot": {}, "cold": {}}
        number_names = {"drop": "drop in pass rate", "cold.drop": "cold run: its drop",
                        "steps": "training steps"}

    lab = Named(preset="cpu")
    assert lab.number_label("hot.drop") == "hot: drop in pass rate"
    assert lab.number_label("cold.drop") == "cold run: its drop"
    assert lab.number_label("steps") == "training steps"
    assert lab.number_label("warm.drop") == "warm.drop"  # no such arm: the name itself
    assert lab.number_label("hot.rise") == "hot.rise"  # nothing declared


def _verdict() -> Verdict:
    conds = ["aggressive: pass rate drops beyond noise"]
    names = {"aggressive.drop_ci_low": "aggressive: drop in pass rate, 95% interval, low end",
             "aggressive.words": "aggressive: words per answer after training",
             "steps": "steps"}  # one without words: shown by its name alone
    rows = [{"seed": s, "aggressive.drop_ci_low": low, "aggressive.words": words,
             "steps": 12.0, conds[0]: low > 0, "holds": low > 0}
            for s, low, words in ((0, 0.125, 1.0), (1, -0.042, 3.5))]
    return Verdict("A claim.", rows, conds, 2, read=["aggressive.drop_ci_low"], labels=names)


def test_a_verdict_shows_the_words_first_and_the_name_in_code_beside_them():
    verdict = _verdict()
    short, details = verdict._repr_html_().split("<details>")
    assert ("<span title='aggressive.drop_ci_low'>aggressive: drop in pass rate, 95% "
            "interval, low end</span></td><td style='text-align:right'>0.125</td>") in short
    assert "words per answer" not in short  # not read: folded away
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", details).group(1)
    assert re.findall(r"<th>(.*?)</th>", head) == ["number", "name in code", "seed 0",
                                                    "seed 1"]
    assert ("<td style='text-align:left'>aggressive: words per answer after training</td>"
            "<td style='text-align:left'><code>aggressive.words</code></td>"
            "<td style='text-align:right'>1.000</td><td style='text-align:right'>3.500</td>"
            ) in details
    assert "<td style='text-align:left'>steps</td>" in details
    assert "<summary>All 3 numbers measured, per seed</summary>" in details


def test_a_verdicts_text_names_a_number_by_its_words_then_its_name_in_code():
    verdict = _verdict()
    text = str(verdict)
    assert ("  aggressive: drop in pass rate, 95% interval, low end (aggressive.drop_ci_low): "
            "0.125 | -0.042") in text
    assert "  aggressive: pass rate drops beyond noise: yes | NO" in text
    assert not verdict.passed and "DOES NOT HOLD: in 1 of 2 seeds (required 2)" in text
    with pytest.raises(AssertionError, match=re.escape("low end (aggressive.drop_ci_low)")):
        verdict.assert_holds()
    assert "  steps: 12.000 | 12.000" not in text  # not read: only the numbers read are listed


def test_a_checked_result_labels_every_number_measured():
    class Toy(Lab):
        claim = "Hot drops."
        arms = {"hot": {}, "cold": {}}
        number_names = {"drop": "drop in pass rate"}

        def measure(self, runs):
            return {f"{arm}.drop": 0.5 if arm == "hot" else 0.0 for arm in runs} | {"n": 3.0}

        def conditions(self, m):
            return {"hot drops": m["hot.drop"] > 0}

    runs = {(arm, seed): None for arm in ("hot", "cold") for seed in (0, 1)}  # never read
    verdict = LabResult(Toy(preset="cpu"), runs).check()
    assert verdict.passed and verdict.read == ["hot.drop"]
    assert verdict.labels == {"hot.drop": "hot: drop in pass rate",
                              "cold.drop": "cold: drop in pass rate", "n": "n"}
    assert "hot: drop in pass rate (hot.drop): 0.500 | 0.500" in str(verdict)
