"""Instruction-following probes: does the model still obey instructions it was never
trained on? Collapse after aggressive fine-tuning shows here first.

A probe passes only when the answer keeps the instruction's format *and* addresses the
request (on topic, with substance; see ``ftlab.evaluate.checks.check_content``). Answers
that keep the format but say nothing (a label, one word, the training template) are
*vacuous* passes: reported apart, never counted. So is the share of answers given in a
training task's own form, the other face of collapse.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from ..data.probes import Probe, load_probes
from ..data.tasks import TASKS
from ..generation import Answer, generate_answers
from .checks import check_content, check_instruction
from .result import EvalResult, mean


def score_probe(probe: Probe, text: str) -> dict[str, bool]:
    """The three checks of one answer: {"format", "on_topic", "substance"}; it passes if all
    hold. A vacuous pass is format without the other two."""
    return {"format": check_instruction(probe.type, text, probe.kwargs),
            **check_content(probe.type, text, probe.kwargs, probe.topic_words)}


def training_form(text: str, tasks: Iterable[str] | None = None) -> str | None:
    """The training task whose strict answer shape ``text`` has (a sentiment label, "The
    answer is N.", the extraction JSON; each ``Task.parse``), or None."""
    for task in (TASKS if tasks is None else tasks):
        if TASKS[task].parse(text):
            return task
    return None


def training_form_share(texts: Iterable[str], tasks: Iterable[str] | None = None) -> float:
    """Share of answers given in a training task's form: open prompts answered like the
    narrow task ("positive", "The answer is 42.") show the model has collapsed onto it."""
    tasks = None if tasks is None else list(tasks)
    return mean(training_form(t, tasks) is not None for t in texts)

PROBE_MAX_NEW_TOKENS = 160  # room for "at least 50 words" or three paragraphs


def run_probes(model, tok, probes: Sequence[Probe] | None = None, *,
               max_new_tokens: int = PROBE_MAX_NEW_TOKENS, batch_size: int | None = None,
               progress: bool = True, keep: int = 12) -> EvalResult:
    """Pass rate overall and per instruction type (greedy answers, checked by code).

    ``extra`` adds what the pass rate leaves out: ``format_pass_rate`` (format alone, the
    old vacuous score), ``vacuous_share`` (answers that keep the format but fail the
    content), ``on_topic_share``, ``substance_share`` and ``training_form_share``.
    """
    probes = list(load_probes() if probes is None else probes)
    answers = generate_answers(model, tok, [p.messages for p in probes],
                               max_new_tokens=max_new_tokens, batch_size=batch_size,
                               progress=progress)
    result = score_probes(probes, answers, keep=keep)
    result.extra = {"max_new_tokens": max_new_tokens, **result.extra}
    return result


def score_probes(probes: Sequence[Probe], answers: Sequence[Answer], *,
                 keep: int = 12) -> EvalResult:
    """Score given answers to the probes (what ``run_probes`` does after generating)."""
    checks = [score_probe(p, a.text) for p, a in zip(probes, answers, strict=True)]
    by_type: dict[str, list[dict[str, bool]]] = defaultdict(list)
    failures = []
    for probe, ans, c in zip(probes, answers, checks):
        by_type[probe.type].append(c)
        if not all(c.values()):
            failures.append({"id": probe.id, "type": probe.type, "prompt": probe.prompt,
                             "output": ans.text, "stopped": ans.stopped,
                             "failed": [k for k, ok in c.items() if not ok]})
    # one failure per type first, so the display shows every kind of miss
    shown = list({f["type"]: f for f in reversed(failures)}.values())[::-1][:keep]
    passed = [all(c.values()) for c in checks]
    vacuous = [c["format"] and not all(c.values()) for c in checks]
    return EvalResult(
        "probes", mean(passed), len(probes),
        {t: mean(all(c.values()) for c in v) for t, v in by_type.items()}, examples=shown,
        extra={"n_per_type": {t: len(v) for t, v in by_type.items()},
               # the score format alone would give, and the part of it that is vacuous
               "format_pass_rate": mean(c["format"] for c in checks),
               "vacuous_share": mean(vacuous),
               "vacuous_by_type": {t: mean(c["format"] and not all(c.values()) for c in v)
                                   for t, v in by_type.items()},
               "on_topic_share": mean(c["on_topic"] for c in checks),
               "substance_share": mean(c["substance"] for c in checks),
               "training_form_share": training_form_share(a.text for a in answers)})
