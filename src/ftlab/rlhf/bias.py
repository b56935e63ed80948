"""Show a reward's length bias: the same answer padded to growing lengths, correct and wrong.

Only the length changes along a curve (filler sentences around a fixed answer), so any slope
in a reward's curve is what it pays for words alone. The gold curve is the reference: flat
up to its word target, then falling.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .pairs import padded_answer
from .prompts import Prompt
from .rewards import Reward, count_words

DEFAULT_LENGTHS = (4, 10, 15, 20, 30, 40, 50)


@dataclass
class LengthBias:
    """Scores of each reward on padded answers. ``rows``: one per (prompt, correct, length)."""

    rows: list[dict]  # {"question", "correct", "target_words", "words", "text", <reward>: score}
    rewards: list[str]

    def curve(self, reward: str, correct: bool) -> tuple[list[int], list[float]]:
        """Mean score per target length, for correct or for wrong answers."""
        lengths = sorted({r["target_words"] for r in self.rows})
        means = [statistics.fmean(r[reward] for r in self.rows
                                  if r["target_words"] == n and r["correct"] == correct)
                 for n in lengths]
        words = [round(statistics.fmean(r["words"] for r in self.rows
                                        if r["target_words"] == n and r["correct"] == correct))
                 for n in lengths]
        return words, means

    def length_correlation(self, reward: str, correct: bool | None = None) -> float:
        """Pearson correlation of score with length in words (over correct, wrong or all).

        NaN where the score does not vary at all (gold on wrong answers is always 0).
        """
        rows = [r for r in self.rows if correct is None or r["correct"] == correct]
        scores = [float(r[reward]) for r in rows]
        if len(set(scores)) < 2:
            return float("nan")
        return statistics.correlation([float(r["words"]) for r in rows], scores)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per reward: length correlation (correct answers, wrong answers) and the mean gap
        between correct and wrong answers of the same length (does it still see correctness?)."""
        out = {}
        for name in self.rewards:
            gap = statistics.fmean(r[name] for r in self.rows if r["correct"]) - \
                statistics.fmean(r[name] for r in self.rows if not r["correct"])
            out[name] = {"length_corr_correct": self.length_correlation(name, True),
                         "length_corr_wrong": self.length_correlation(name, False),
                         "correct_minus_wrong": gap}
        return out


def length_bias(rewards: Sequence[Reward], prompts: Sequence[Prompt],
                lengths: Sequence[int] = DEFAULT_LENGTHS, seed: int = 0) -> LengthBias:
    """Score every prompt's reference and distractor answers padded to each length."""
    rng = random.Random(seed)
    rows = []
    for p in prompts:
        for correct, core in ((True, p.reference), (False, p.distractor)):
            for n in lengths:
                text = padded_answer(core, n, rng)
                rows.append({"question": p.question, "prompt": p.chat(), "correct": correct,
                             "target_words": n, "words": count_words(text), "text": text})
    for reward in rewards:
        scores = reward.score([r["prompt"] for r in rows], [r["text"] for r in rows])
        for row, s in zip(rows, scores, strict=True):
            row[reward.name] = s
    for row in rows:
        del row["prompt"]
    return LengthBias(rows, [r.name for r in rewards])


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def length_bias_figure(bias: LengthBias, standardize: Sequence[str] = ("learned_rm",)):
    """Score against answer length, one colour per reward; solid = correct, dashed = wrong.

    A learned reward model's scores are logits with no fixed scale: rewards named in
    ``standardize`` are plotted as z-scores on a second y-axis so their shape is comparable.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, name in enumerate(bias.rewards):
        on_right = name in standardize
        all_scores = [r[name] for r in bias.rows]
        mu, sd = statistics.fmean(all_scores), statistics.pstdev(all_scores) or 1.0
        for correct in (True, False):
            words, means = bias.curve(name, correct)
            ys = [(m - mu) / sd for m in means] if on_right else means
            fig.add_trace(go.Scatter(
                x=words, y=ys, mode="lines+markers", yaxis="y2" if on_right else "y",
                name=f"{name} ({'correct' if correct else 'wrong'})",
                line={"color": _COLORS[i % len(_COLORS)], "dash": "solid" if correct else "dash"},
                hovertemplate="%{x} words: %{y:.3f}<extra>" + name + "</extra>"))
    layout = {"title": "Reward against answer length (same answer, padded with filler)",
              "xaxis": {"title": {"text": "answer length (words)"}},
              "yaxis": {"title": {"text": "reward"}},
              "legend": {"orientation": "h", "y": -0.2}, "template": "plotly_white"}
    if any(name in standardize for name in bias.rewards):
        layout["yaxis2"] = {"title": {"text": "learned reward (z-score)"}, "overlaying": "y",
                            "side": "right", "showgrid": False}
    fig.update_layout(**layout)
    return fig
