"""A run folder holds the whole run: the answers an evaluator generated are written into it
and read back from it, so a folder moved to another machine shows what the notebook showed."""

from __future__ import annotations

import shutil

import ftlab
from ftlab.evaluate.behaviour import ProbeWatch, Sizes, saved_answers
from ftlab.runs import load_run

SMALL = Sizes(probes_per_type=1, live_per_type=1, probe_tokens=4, other_rows=2,
              bench_per_area=1)


def test_a_copied_run_folder_shows_the_collapse_labs_side_by_side_answers(
        tmp_path, monkeypatch):
    from ftlab.labs.show_collapse import side_by_side

    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path / "cache-here"))
    cfg = ftlab.RunConfig(model="tiny", preset="cpu", method="full").replace(
        task="sentiment", size=12, steps=2, batch_size=4, eval_every=2,
        **{"eval.samples": 0, "data.val_size": 4})
    run = ftlab.train(cfg, evaluators={"probes": ProbeWatch("cpu", sizes=SMALL)},
                      runs_dir=tmp_path / "here", progress=False)
    assert sorted(p.name for p in (run.path / "answers").iterdir()) == [
        "probes-step0.json", "probes-step2.json"]

    # Another machine: a new runs folder, an empty ftlab cache, only the folder copied.
    elsewhere = tmp_path / "elsewhere" / run.path.name
    shutil.copytree(run.path, elsewhere)
    shutil.rmtree(run.path)
    monkeypatch.setenv("FTLAB_RUNS", str(elsewhere.parent))
    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path / "empty-cache"))
    moved = load_run(elsewhere)
    before, after = saved_answers(moved, "probes", "first"), saved_answers(moved, "probes")
    assert saved_answers(run, "probes", "first") is None  # the original folder is gone
    assert before is not None and after is not None
    assert [a["id"] for a in before] == [a["id"] for a in after] and len(after) == 12
    shown = side_by_side(moved).data
    assert "not kept" not in shown
    for row in after[:4]:
        if row["type"] in ("all_caps", "bullet_count", "json_output", "min_words"):
            assert row["prompt"].split()[0] in shown


def test_answers_whose_outcomes_disagree_with_the_run_are_not_shown(tmp_path):
    """A file of answers that does not match the run's own per-item numbers (edited, or
    from another run) is refused rather than shown beside the wrong numbers."""
    import json

    cfg = ftlab.RunConfig(model="tiny", preset="cpu", method="full").replace(
        task="sentiment", size=12, steps=1, batch_size=4, eval_every=1,
        **{"eval.samples": 0, "data.val_size": 4})
    run = ftlab.train(cfg, evaluators={"probes": ProbeWatch("cpu", sizes=SMALL)},
                      runs_dir=tmp_path, progress=False)
    path = run.path / "answers" / "probes-step1.json"
    stored = json.loads(path.read_text())
    key = next(iter(stored["outcomes"]))
    stored["outcomes"][key] = 1.0 - stored["outcomes"][key]
    path.write_text(json.dumps(stored))
    assert saved_answers(load_run(run.path), "probes") is None
