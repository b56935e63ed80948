"""What a learner sees in a lab's panel, fed with hand-made events (no model, no training).

``train`` is replaced by a script of events, so each test is the panel's view of one run:
the status line, the samples, the figure, Stop and a cached replay (issue 32).
"""

from __future__ import annotations

import math
import re
import threading
from types import SimpleNamespace

import pytest

import ftlab
from ftlab.data.tasks import TASKS
from ftlab.engine.callbacks import Evaluations
from ftlab.events import EventBus
from ftlab.labs.collapse import Collapse
from ftlab.labs.reward_hacking import RewardHacking
from ftlab.widgets import ControlPanel, Dashboard, SamplesView
from ftlab.widgets import panel as panel_module
from ftlab.widgets.labels import metric_label

NAN = math.nan
TINY = ftlab.RunConfig(model="tiny", preset="cpu").replace(
    size=30, **{"eval.samples": 0, "eval.every": 1000, "train.batch_size": 4})


def start(total: int = 4, samples: int = 2) -> dict:
    return {"kind": "start", "run_dir": "runs/x", "total_steps": total, "params": {},
            "config": {"eval": {"samples": samples}}}


def step(k: int, loss: float = 1.0, total: int = 4, **metrics: float) -> dict:
    return {"kind": "step", "step": k, "total_steps": total, "loss": loss,
            "learning_rate": 1e-3, "grad_norm": 1.0, "elapsed_s": float(k), "metrics": metrics}


def evaluation(k: int, val: float = NAN, best: float = NAN, best_step: int = 0,
               **metrics: float) -> dict:
    return {"kind": "eval", "step": k, "val_loss": val, "perplexity": NAN,
            "best_val_loss": best, "best_step": best_step, "elapsed_s": 0.0,
            "metrics": metrics, "full": True}


def samples(k: int, *qa: tuple[str, str, str]) -> dict:
    return {"kind": "samples", "step": k,
            "samples": [{"question": q, "expected": x, "answer": a, "stopped": True,
                         "words": float(len(a.split())), "proxy": 0.5, "gold": 0.5}
                        for q, x, a in qa]}


def end(k: int, status: str = "completed", **final) -> dict:
    return {"kind": "end", "status": status, "step": k, "error": None,
            "final": {"wall_s": 12.0, **final}}


SUN = ("Which star is at the centre of our solar system?", "Sun", "The Sun.")
WEEK = ("How many days are in a week?", "7", "A week is 7 days in Roman numerals: VII.")
WATER = ("What is H2O?", "water", "H2O is water, a molecule of two hydrogens.")
PARIS = ("What is the capital of France?", "Paris", "Paris is the capital of France.")

# a reward-hacking run as the engine reports it: per-step sampled means rise for both
# proxy and gold, the held-out greedy answers' gold falls (what the lesson is about)
RL_RUN = [
    start(),
    evaluation(0, **{"heldout.gold": 0.567, "heldout.words": 17.6, "heldout.proxy": 0.626}),
    samples(0, SUN, WATER),
    step(1, -0.024, **{"rl.proxy": 0.425, "rl.gold": 0.144, "rl.length": 14.0}),
    step(2, -0.010, **{"rl.proxy": 0.6, "rl.gold": 0.3, "rl.length": 20.0}),
    evaluation(2, **{"heldout.gold": 0.45, "heldout.words": 22.0}),
    step(3, -0.02, **{"rl.proxy": 0.7, "rl.gold": 0.5, "rl.length": 25.0}),
    samples(3, WEEK, PARIS),
    step(4, -0.03, **{"rl.proxy": 0.739, "rl.gold": 0.608, "rl.length": 27.0}),
    evaluation(4, **{"heldout.gold": 0.316, "heldout.words": 26.8, "heldout.proxy": 0.739}),
    end(4, first_proxy=0.425, last_proxy=0.739, first_gold=0.144, last_gold=0.608),
]


def scripted(events, *, wait_for_stop: int | None = None, seen: list | None = None):
    """A stand-in for ``train``: sends ``events`` to the listeners, optionally waits for
    Stop after the step ``wait_for_stop`` (recording the status line in ``seen``)."""
    def fake_train(cfg, on_event, stop, evaluators, runs_dir, progress, reuse):
        for e in events:
            for fn in on_event:
                fn(e)
            if seen is not None:
                seen.append(panel_of[0].status_text)
            if e["kind"] == "step" and e["step"] == wait_for_stop:
                assert stop.wait(30)
        return SimpleNamespace(from_cache=reuse, status=events[-1]["status"], evals=[])
    panel_of: list = []
    return fake_train, panel_of


def run_script(monkeypatch, panel: ControlPanel, events, **kw):
    fake, panel_of = scripted(events, **kw)
    panel_of.append(panel)
    monkeypatch.setattr(panel_module, "train", fake)
    panel.start()
    return panel


def rows_of(html_text: str) -> list[str]:
    """The table rows of an HTML page, as plain text with cells joined by ' | '."""
    rows = re.findall(r"<tr>(.*?)</tr>", html_text, flags=re.S)
    return [" | ".join(re.sub(r"<[^>]+>", "", c).strip()
                       for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S))
            for r in rows]


# -- 1. the reward lab's samples: each answer beside its own question ------------------------

def test_policy_samples_put_each_answer_on_its_own_questions_row():
    view = SamplesView()
    for e in RL_RUN:
        view.on_event(e)
    rows = rows_of(view.widget.value)[1:]  # without the header
    for question, _, answer in (SUN, WATER, WEEK, PARIS):
        row = next(r for r in rows if question in r)
        assert answer in row.replace("&#x27;", "'"), (question, row)
    sun = next(r for r in rows if SUN[0] in r)
    assert WEEK[2] not in sun and "VII" not in sun  # never another question's answer
    assert "the same validation prompts" not in view.widget.value
    assert "own question" in view.widget.value
    # the colour of an answer is judged against its own question's expected answer
    week = re.search(r"<td class='(\w*)'>A week is 7 days", view.widget.value)
    assert week and week.group(1) == "ok"
    assert all(r["after"] is None for r in view.rows)  # no after-answer to a before-question


def test_supervised_samples_pair_before_and_after_by_question_not_by_position():
    view = SamplesView()
    view.on_event(samples(0, SUN, PARIS))
    view.on_event(samples(4, PARIS[:2] + ("Paris.",), SUN[:2] + ("Sun",)))  # other order
    assert view.rows == [
        {"question": SUN[0], "expected": "Sun", "before": "The Sun.", "after": "Sun"},
        {"question": PARIS[0], "expected": "Paris", "before": PARIS[2], "after": "Paris."}]
    assert "the same validation prompts" in view.widget.value


# -- 2. the reward lab's status line and plots: the held-out view ------------------------------

def test_policy_status_line_quotes_the_held_out_view_not_the_per_step_means(monkeypatch):
    panel = run_script(monkeypatch, RewardHacking().panel("hacked"), RL_RUN)
    panel.wait(30)
    text = panel.status_text
    assert "gold · held-out, greedy 0.567 → 0.316" in text
    assert "words · held-out, greedy 17.6 → 26.8" in text
    assert "0.144 → 0.608" not in text and "gold 0.144" not in text
    assert "train loss" not in text and "-0.0" not in text


def test_without_held_out_evaluations_the_status_quotes_the_samples_as_samples(monkeypatch):
    panel = ControlPanel(RewardHacking().config("hacked"), metrics={"reward": ["rl.proxy"]})
    run_script(monkeypatch, panel, [e for e in RL_RUN if e["kind"] != "eval"])
    panel.wait(30)
    assert "proxy · sampled, each step 0.425 → 0.739" in panel.status_text


def test_policy_step_status_says_these_are_this_steps_samples_and_no_grpo_loss():
    panel = RewardHacking().panel("hacked")
    panel._on_event(start())
    panel._on_event(step(1, -0.024, **{"rl.proxy": 0.425, "rl.gold": 0.144}))
    assert "train loss" not in panel.status_text
    assert "this step: proxy · sampled, each step 0.425" in panel.status_text


def test_policy_panel_plots_no_grpo_loss_and_names_its_lines_for_a_learner():
    panel = RewardHacking().panel("hacked")
    names = [t.name for t in panel.dashboard.figure.data]
    assert "training loss" not in names and "validation loss" not in names
    assert "gold · held-out, greedy" in names and "proxy · sampled, each step" in names
    assert not any(re.fullmatch(r"[a-z]+\.[a-z_.]+", n) for n in names), names


# -- 4. after Stop the best is the lowest evaluated loss --------------------------------------

def test_the_evaluation_closing_a_stopped_run_can_be_the_best():
    evals = Evaluations(EventBus([]), None, None, None, {}, [], 0)
    args = SimpleNamespace(max_steps=200)

    def measure(at: int, loss: float, closing: bool = False) -> None:
        evals.force_full = closing
        evals.on_evaluate(args, SimpleNamespace(global_step=at), None,
                          metrics={"eval_loss": loss})

    measure(0, 2.445)
    measure(3, 0.743, closing=True)  # Stop after step 3; the run's last model measured
    assert (evals.best_step, evals.best_val_loss) == (3, 0.743)
    assert evals.evals[-1]["best_step"] == 3  # the event the dashboard's star reads
    measure(3, 0.743, closing=True)  # the same step measured again is no new candidate
    measure(8, 0.9)
    measure(8, 0.5, closing=True)  # early stopping's restored weights, measured at step 8
    assert (evals.best_step, evals.best_val_loss) == (3, 0.743)


def test_dashboard_star_marks_the_best_and_leaves_the_point_under_it_visible():
    dash = Dashboard(throttle_s=0)
    dash.on_event(start(200))
    dash.on_event(evaluation(0, 2.445, 2.445, 0))
    dash.on_event(step(1, 2.0, 200))
    dash.on_event(evaluation(3, 0.743, 0.743, 3))
    assert dash.points["best"] == ([3], [0.743])
    star = dash.figure.data[list(dash.labels).index("best")]
    assert star.marker.symbol == "star-open"  # hollow: the validation point shows through
    order = list(dash.labels)
    assert order.index("best") < order.index("val loss")  # the point is drawn on top


# -- 6. Stop says what it is finishing and why it takes that long -----------------------------

def test_stop_says_the_closing_measurement_and_how_long_it_took_at_step_0(monkeypatch):
    seen: list[str] = []
    run = [start(200), evaluation(0, 2.4, 2.4, 0), step(1, 2.0, 200), step(2, 1.9, 200),
           evaluation(2, 1.5, 1.5, 2), end(2, "stopped")]
    panel = ControlPanel(TINY, runs_dir="runs", evaluators={"probes": lambda *a: 0.0})
    run_script(monkeypatch, panel, run, wait_for_stop=1, seen=seen)
    while len(seen) < 3:
        threading.Event().wait(0.01)
    panel.stop()
    text = panel.status_text
    assert "Stopping: the step in progress ends first" in text
    assert "measured once more (validation loss, probes; about 0 s" in text
    panel.wait(30)
    assert any(t.startswith("● running") and "Stopped after step 2" in t
               and "measured once more" in t for t in seen), seen
    assert "stopped by you" in panel.status_text


# -- 7. a cached replay says so --------------------------------------------------------------

def test_a_replay_from_the_run_cache_says_so_and_train_again_trains(monkeypatch):
    run = [start(), evaluation(0, 2.4, 2.4, 0), step(1), evaluation(4, 1.5, 1.5, 4), end(4)]
    panel = ControlPanel(TINY, runs_dir="runs", reuse=True)
    assert panel.train_again.layout.display is None  # offered where runs are reused
    run_script(monkeypatch, panel, run)
    panel.wait(30)
    assert "loaded from the run cache" in panel.status_text
    assert "change a knob, or tick 'train again'" in panel.status_text
    assert "completed at step 4" in panel.status_text  # and what that run was
    panel.train_again.value = True
    run_script(monkeypatch, panel, run)
    panel.wait(30)
    assert "run cache" not in panel.status_text
    assert ControlPanel(TINY).train_again.layout.display == "none"


# -- 8. figures: labels, legends beside their lines, titled axes, whole steps ------------------

@pytest.mark.parametrize("lab", [RewardHacking, Collapse])
def test_each_panel_has_its_legend_beside_it_and_titled_axes(lab):
    dash = lab().panel().dashboard
    fig = dash.figure
    dash.on_event(start(4))
    rows = len(fig.layout.annotations)  # one title per panel
    for row in range(1, rows + 1):
        sub = fig.get_subplot(row, 1)
        key = "legend" if row == 1 else f"legend{row}"
        legend = fig.layout[key]
        assert legend.x > 1 and sub.yaxis.domain[0] <= legend.y <= sub.yaxis.domain[1]
        assert sub.xaxis.showticklabels and sub.xaxis.title.text == "step"
        assert sub.yaxis.title.text
        assert sub.xaxis.dtick == 1 and list(sub.xaxis.range) == [0, 4]  # no 0.5, 1.5
    for name, trace_name in dash.labels.items():
        assert trace_name == metric_label(name)
    for trace in fig.data:  # each line's legend is the one beside its own panel
        row = int(trace.yaxis[1:] or 1)
        assert trace.legend == ("legend" if row == 1 else f"legend{row}")


def test_a_share_panel_spans_zero_to_one_even_for_one_point():
    dash = Collapse().panel().dashboard
    dash.on_event(start(12))
    dash.on_event(evaluation(0, 2.0, 2.0, 0, **{"probes.live": 0.33}))
    for row in (2, 3):  # pass rate, training form: shares
        assert list(dash.figure.get_subplot(row, 1).yaxis.range) == [-0.03, 1.03]
    assert dash.figure.layout.yaxis.range is None  # the loss keeps its own scale


# -- 9. small things ------------------------------------------------------------------------

def test_a_preset_without_samples_says_none_will_come():
    view = SamplesView(kept=0)
    assert "eval.samples</code> is 0" in view.widget.value
    assert "appear here" not in view.widget.value
    view.on_event(start(samples=2))
    assert "appear here" in view.widget.value
    assert "is 0" in ControlPanel(TINY).samples.widget.value  # the panel passes its preset's


def test_knobs_read_as_the_notebooks_name_them_and_only_where_they_apply():
    panel = RewardHacking().panel("hacked")
    labels = {name: panel[name].description for name in panel.knobs}
    assert labels["rl.kl"] == "KL coefficient β"
    assert labels["rl.max_completion_length"] == "max answer tokens"
    assert panel["rl.labeller_p_longer"].layout.display == "none"  # length proxy: unused
    panel["rl.reward"].value = "learned"
    assert panel["rl.labeller_p_longer"].layout.display is None
    collapse = Collapse().panel()
    assert collapse["data.mix_share"].description == "mix share"
    assert set(collapse["task"].options) == set(TASKS)  # not free text


def test_side_by_side_answers_wrap_between_words(monkeypatch):
    from ftlab.labs import show_collapse

    answer = {"id": 1, "type": "all_caps", "prompt": "Say it loud.", "passed": True,
              "training_form": None, "answer": "A mysterious wave"}
    monkeypatch.setattr(show_collapse, "saved_answers", lambda run, name, at="final": [answer])
    run = SimpleNamespace(config=SimpleNamespace(method=SimpleNamespace(name="full"),
                                                 train=SimpleNamespace(learning_rate=2e-4)))
    page = show_collapse.side_by_side(run, types=("all_caps",)).data
    assert "word-break:normal" in page  # JupyterLab's <pre> otherwise breaks anywhere
