"""The widgets driven from Python, as a learner's clicks would drive them (tiny model).

No kernel and no browser: ``button.click()`` fires the same handlers a click in the page
fires. The browser tests (tests/browser/) check that the page really shows them.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading

import ipywidgets as w
import pytest

import ftlab
from ftlab.events import EvalLogged, RunStarted, SamplesLogged, StepLogged, ValLossMeasured
from ftlab.knobs import knobs_of
from ftlab.runs import load_run
from ftlab.widgets import CompareView, ControlPanel, Dashboard, SamplesView

# small and quick: no generated samples, evaluation only at step 0 and at the end
TINY = ftlab.RunConfig(model="tiny", preset="cpu").replace(
    size=30, **{"eval.samples": 0, "eval.every": 1000, "train.batch_size": 4})


def make_panel(tmp_path, **kw) -> ControlPanel:
    kw.setdefault("knobs", ["lr", "steps", "size", "r", "num_virtual_tokens", "seed"])
    return ControlPanel(TINY, runs_dir=tmp_path / "runs", **kw)


def wait_for_first_step(panel: ControlPanel) -> threading.Event:
    seen = threading.Event()
    panel.listeners.append(lambda e: seen.set() if e.kind == "step" else None)
    return seen


# -- controls built from the knob metadata ----------------------------------------------

def test_knobs_become_widgets_with_help_as_tooltip(tmp_path):
    panel = make_panel(tmp_path)
    lr = panel["lr"]
    assert isinstance(lr, w.FloatLogSlider)  # learning rates live on a log scale
    assert lr.tooltip == knobs_of(ftlab.TrainConfig)["learning_rate"]["help"]
    assert lr.value == pytest.approx(ftlab.Lora.default_lr)
    r = panel["r"]
    assert isinstance(r, w.IntSlider) and r.min >= knobs_of(ftlab.Lora)["r"]["low"]
    assert r.tooltip == knobs_of(ftlab.Lora)["r"]["help"]
    assert panel["steps"].value == ftlab.PRESETS["cpu"]["train.max_steps"]  # preset shown
    assert "preset <b>cpu</b>" in panel.header.value and "batch_size 4" in panel.header.value
    assert isinstance(panel["seed"], w.IntText)  # no useful slider range: a free field


def test_switching_method_shows_its_knobs_and_its_learning_rate(tmp_path):
    panel = make_panel(tmp_path)
    assert panel["num_virtual_tokens"].layout.display == "none"
    panel["method"].value = "prefix"
    assert panel["r"].layout.display == "none"
    assert panel["num_virtual_tokens"].layout.display is None
    assert panel["lr"].value == pytest.approx(ftlab.PrefixTuning.default_lr)
    panel["num_virtual_tokens"].value = 7
    cfg = panel.build_config()
    assert cfg.method == ftlab.PrefixTuning(num_virtual_tokens=7)


def test_bad_value_shows_the_config_error_in_the_panel_without_running(tmp_path):
    panel = make_panel(tmp_path)
    panel["seed"].set_state({"value": -1})  # typed in the browser's field: checked on Run
    panel.run_button.click()
    assert not panel.running and panel.result is None
    assert "seed = -1 is not allowed" in panel.message_text
    assert panel.message.layout.display is None  # visible
    with pytest.raises(ftlab.ConfigError, match="data.size"):
        panel.run(seed=0, size=3)  # the programmatic path raises the same readable error
    assert "data.size = 3 is not allowed" in panel.message_text


# -- running ----------------------------------------------------------------------------

def test_run_button_trains_the_config_the_widgets_describe_and_streams_points(tmp_path):
    panel = make_panel(tmp_path)
    panel["steps"].value = 3
    panel["lr"].value = 2e-3
    panel["r"].value = 4
    panel.run_button.click()
    assert panel.running  # the click returned while training goes on in the background
    result = panel.wait(timeout=300)
    assert result is not None and result.status == "completed"
    cfg = panel.config
    assert (cfg.model, cfg.method, cfg.train.max_steps) == ("tiny", ftlab.Lora(r=4), 3)
    assert cfg.train.learning_rate == pytest.approx(2e-3)
    points = panel.dashboard.points
    assert points["train loss"][0] == [1, 2, 3]
    assert points["val loss"][0] == [0, 3]  # step 0 (before training) and the end
    assert points["val loss"][1] == pytest.approx([e["val_loss"] for e in result.evals])
    # the synced state holds the points too, so Voila / late frontends see them
    assert list(panel.dashboard.figure._widget_data[0]["x"]) == [1, 2, 3]
    assert panel.state == "completed" and "completed at step 3" in panel.status_text
    assert panel.progress.value == 3
    assert load_run(result.run_dir).status == "completed"
    assert not panel.run_button.disabled and panel.stop_button.disabled


def test_stop_ends_the_run_within_a_step_and_saves_it_as_stopped(tmp_path):
    panel = make_panel(tmp_path)
    first_step = wait_for_first_step(panel)
    assert panel.start(steps=200)
    assert first_step.wait(300), "no training step arrived"
    panel.stop_button.click()
    result = panel.wait(timeout=300)
    assert result.status == "stopped"
    assert result.final["steps"] <= 3  # the step going on when Stop was pressed, maybe one more
    assert panel.state == "stopped" and "stopped" in panel.status_text
    assert load_run(result.run_dir).status == "stopped"
    assert len(panel.dashboard.points["train loss"][0]) == result.final["steps"]
    # the star marks the lowest loss evaluated, the closing evaluation of the stop included
    steps, losses = panel.dashboard.points["val loss"]
    best = min(range(len(losses)), key=lambda i: (losses[i], steps[i]))
    assert panel.dashboard.points["best"] == ([steps[best]], [losses[best]])
    assert (result.final["best_step"], result.final["best_val_loss"]) == (
        steps[best], losses[best])


def test_panel_run_trains_on_the_calling_thread_and_an_interrupt_stops_it_as_stop_does(
        tmp_path):
    """From code the run is not on a second thread (which steps 1.3-1.5x slower after the
    main thread computed): the kernel's interrupt takes Stop's place, ends it cleanly, and
    is raised after, so the next cells of a Run All do not start."""
    panel = make_panel(tmp_path)
    threads, stepped = set(), threading.Event()

    def on_event(e) -> None:
        if e.kind == "step":
            threads.add(threading.current_thread().name)
            stepped.set()

    panel.listeners.append(on_event)
    threading.Thread(target=lambda: stepped.wait(300) and os.kill(os.getpid(), signal.SIGINT),
                     daemon=True).start()
    with pytest.raises(KeyboardInterrupt):  # raised once the run has ended cleanly
        panel.run(steps=200)
    result = panel.result
    assert threads == {threading.main_thread().name}
    assert result.status == "stopped" and result.final["steps"] < 200
    assert load_run(result.run_dir).status == "stopped"
    assert panel.state == "stopped" and not panel.running
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_stop_cannot_be_pressed_during_a_run_from_code(tmp_path):
    panel = make_panel(tmp_path)
    seen = []
    panel.listeners.append(lambda e: seen.append((panel.stop_button.disabled,
                                                  panel.status_text))
                           if e.kind == "step" else None)
    panel.run(steps=1)
    disabled, status = seen[0]
    assert disabled and "interrupt the kernel" in status


def test_second_run_is_refused_while_one_runs(tmp_path):
    panel = make_panel(tmp_path)
    first_step = wait_for_first_step(panel)
    assert panel.start(steps=200)
    try:
        panel.run_button.click()
        assert "already going" in panel.message_text
        with pytest.raises(ftlab.FtlabError, match="already going"):
            panel.run()
        assert first_step.wait(300)
    finally:
        panel.stop()
        result = panel.wait(timeout=300)
    assert result.status == "stopped"


def test_an_error_inside_the_run_is_shown_in_the_panel(tmp_path):
    panel = make_panel(tmp_path, evaluators={"broken": lambda model, tok, ctx: 1 / 0})
    panel.run_button.click()
    with pytest.raises(ftlab.TrainingError, match="ZeroDivisionError"):
        panel.wait(timeout=300)
    assert panel.state == "failed"
    assert "ZeroDivisionError: division by zero" in panel.message_text
    assert not panel.run_button.disabled  # ready for the next try


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A LoRA and a prompt-tuning run through the programmatic path."""
    runs = tmp_path_factory.mktemp("runs")
    panel = ControlPanel(TINY, knobs=["lr", "steps"], runs_dir=runs)
    results = [panel.run(steps=2), panel.run(method="prompt", steps=2)]
    results[0].panel = panel
    return results


def test_panel_run_blocks_and_shows_what_ran(two_runs):
    lora, prompt = two_runs
    assert (lora.status, prompt.status) == ("completed", "completed")
    assert prompt.config.method.name == "prompt"
    panel = lora.panel
    assert (panel["method"].value, panel["steps"].value) == ("prompt", 2)  # what ran last
    assert panel["lr"].value == pytest.approx(ftlab.PromptTuning.default_lr)


# -- views fed with events or run folders -------------------------------------------------

def test_dashboard_plots_lab_metrics_in_their_own_panels():
    dash = Dashboard(metrics={"reward": ["proxy", "gold"]}, throttle_s=0)
    dash.on_event(RunStarted(run_dir="x", config={}, total_steps=2, params={}))
    for step, (proxy, gold) in enumerate([(0.5, 0.5), (0.7, 0.6), (0.9, 0.4)]):
        if step:
            dash.on_event(StepLogged(step, 2, 1.0 / step, 1e-3, 1.0, float(step)))
        dash.on_event(EvalLogged(step, 2.0 - step / 2, 7.0, 2.0 - step / 2, step, 0.0,
                                 metrics={"proxy": proxy, "gold": gold}))
    assert dash.points["proxy"] == ([0, 1, 2], [0.5, 0.7, 0.9])
    assert dash.points["gold"][1] == [0.5, 0.6, 0.4]
    assert dash.points["best"] == ([2], [1.0])
    assert len(dash.figure.layout.annotations) == 2  # panel titles: loss, reward
    assert list(dash.figure._widget_data[3]["y"]) == [0.5, 0.7, 0.9]


def test_a_validation_loss_is_plotted_before_its_evaluators_finish_and_only_once():
    dash = Dashboard(throttle_s=0)
    dash.on_event(RunStarted(run_dir="x", config={}, total_steps=4, params={}))
    dash.on_event(ValLossMeasured(0, 2.5))  # the evaluators of step 0 are still running
    assert dash.points["val loss"] == ([0], [2.5])
    dash.on_event(EvalLogged(0, 2.5, 12.2, 2.5, 0, 0.0))
    dash.on_event(ValLossMeasured(4, 1.5))
    dash.on_event(EvalLogged(4, 1.5, 4.5, 1.5, 4, 0.0))
    # the returned model measured again at the last step (early stopping) is its own point
    dash.on_event(EvalLogged(4, 1.25, 3.5, 1.5, 4, 0.0))
    assert dash.points["val loss"] == ([0, 4, 4], [2.5, 1.5, 1.25])


def test_samples_view_puts_before_and_after_side_by_side():
    view = SamplesView()
    row = {"question": "2+2?", "expected": "4", "stopped": True}
    view.on_event(SamplesLogged(0, [dict(row, answer="five <b>")]))
    view.on_event(SamplesLogged(4, [dict(row, answer="4")]))
    assert view.rows == [{"question": "2+2?", "expected": "4", "before": "five <b>",
                          "after": "4"}]
    assert "five &lt;b&gt;" in view.widget.value  # model output is escaped, not rendered
    assert "(step 4)" in view.widget.value


def test_compare_view_overlays_runs_from_their_folders(two_runs):
    view = CompareView(runs_dir=two_runs[0].run_dir.parent)
    assert len(view.picker.options) == 2
    view.select(two_runs)
    assert [r["method"] for r in view.rows] == ["lora", "prompt"]
    assert len(view.figure.data) == 4  # val + train curve per run
    assert list(view.figure.data[0].x) == [e["step"] for e in two_runs[0].evals]
    assert "prompt" in view.table.value and "completed" in view.table.value
    dash = Dashboard().show(load_run(two_runs[1].run_dir))
    assert dash.points["train loss"][0] == [1, 2]


def test_compare_view_keeps_two_runs_of_the_same_name_from_two_runs_folders(two_runs, tmp_path):
    """Two students' runs folders may each hold a run folder of the same name: both shown."""
    name = two_runs[0].run_dir.name
    for student in ("ana", "ben"):
        shutil.copytree(two_runs[0].run_dir, tmp_path / student / name)
    view = CompareView(runs_dir=tmp_path / "ana")
    assert [label for label, _ in view.picker.options] == [f"{name}  [completed]"]
    view.select([tmp_path / "ana" / name, tmp_path / "ben" / name])
    assert len(view.selected) == 2 and len(view.figure.data) == 4
    assert [r["run"] for r in view.rows] == [f"ana/{name}", f"ben/{name}"]
    assert sorted(label for label, _ in view.picker.options) == [
        f"ana/{name}  [completed]", f"ben/{name}  [completed]"]
    assert "ana/" in view.figure.data[0].name and "ben/" in view.figure.data[2].name
    view.refresh()  # the picked run from the other folder stays
    assert [r["run"] for r in view.rows] == [f"ana/{name}", f"ben/{name}"]
    assert view.select([name]).rows[0]["run"] == f"ana/{name}"  # a bare name still works
