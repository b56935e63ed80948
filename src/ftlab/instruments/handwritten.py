"""What the trainer does for you: one optimizer step written out, checked against the engine.

``ftlab.engine`` hands batches to transformers' ``Trainer``. One of its steps, for full
fine-tuning with AdamW, a constant learning rate and no warm-up, is this::

    logits = model(input_ids, attention_mask).logits            # forward
    loss = answer_loss(logits, labels)                         # cross-entropy, answers only
    loss.backward()                                            # gradients
    clip_grad_norm(params, max_norm)                           # clip
    adamw_step(params, lr, ...)                                # update

``engine_first_step(config)`` trains one real step through ``ftlab.engine`` and records the
batch it saw and the weights before and after; ``check_against_engine`` replays that step
by hand from the same starting weights on the same batch and reports how far apart the
losses and the updated weights are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import TrainerCallback

from ..config import RunConfig
from ..data.formats import IGNORE_INDEX

# -- the step, by hand ------------------------------------------------------------------


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting each next token, over answer tokens only.

    Position t predicts token t+1, so logits drop their last position and labels their
    first. Prompt and padding tokens carry the label -100 and are left out of the mean.
    """
    pred = logits[:, :-1, :].float()
    target = labels[:, 1:]
    return F.cross_entropy(pred.reshape(-1, pred.size(-1)), target.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """Scale all gradients down together so that their joint L2 norm is at most max_norm;
    return the norm before clipping (what the trainer logs as ``grad_norm``)."""
    norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in params))
    scale = min(1.0, max_norm / (float(norm) + 1e-6))
    for p in params:
        p.grad.mul_(scale)
    return float(norm)


@dataclass
class AdamState:
    """AdamW's memory: two running averages per parameter (this is the 'optimizer state')."""

    step: int = 0
    m: dict[int, torch.Tensor] = field(default_factory=dict)  # mean of gradients
    v: dict[int, torch.Tensor] = field(default_factory=dict)  # mean of squared gradients


@torch.no_grad()
def adamw_step(params: list[torch.Tensor], state: AdamState, lr: float,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 0.0) -> None:
    """One AdamW update (Loshchilov & Hutter, 2019), as torch.optim.AdamW computes it."""
    b1, b2 = betas
    state.step += 1
    for i, p in enumerate(params):
        g = p.grad
        m = state.m.setdefault(i, torch.zeros_like(p))
        v = state.v.setdefault(i, torch.zeros_like(p))
        p.mul_(1 - lr * weight_decay)  # decoupled weight decay
        m.mul_(b1).add_(g, alpha=1 - b1)  # m = b1·m + (1-b1)·g
        v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v = b2·v + (1-b2)·g²
        m_hat = m / (1 - b1 ** state.step)  # bias correction: early averages are too small
        v_hat = v / (1 - b2 ** state.step)
        p.addcdiv_(m_hat, v_hat.sqrt().add_(eps), value=-lr)  # p -= lr·m̂/(√v̂ + eps)


def training_step(model, batch: dict, state: AdamState, lr: float, max_norm: float = 1.0,
                  weight_decay: float = 0.0) -> dict:
    """Forward, answer-only loss, backward, clip, AdamW: one step; returns loss and norm."""
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = answer_loss(logits, batch["labels"])
    loss.backward()
    grad_norm = clip_grad_norm(params, max_norm)
    adamw_step(params, state, lr, weight_decay=weight_decay)
    model.zero_grad(set_to_none=True)
    return {"loss": float(loss), "grad_norm": grad_norm}


# -- the engine's step, recorded --------------------------------------------------------


class FirstStepRecorder(TrainerCallback):
    """Records the first training batch the model sees, its loss, and the trainable
    weights as they were before the first step (a forward pre-hook on the model)."""

    def __init__(self) -> None:
        self.batch: dict | None = None
        self.loss: float | None = None
        self.before: dict[str, torch.Tensor] = {}
        self._handle = None

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()
                       if p.requires_grad}

        def hook(module, a, kwargs, output):
            if module.training and self.batch is None:
                self.batch = {k: kwargs[k].detach().clone()
                              for k in ("input_ids", "attention_mask", "labels") if k in kwargs}
                self.loss = None if output.loss is None else float(output.loss.detach())

        self._handle = model.register_forward_hook(hook, with_kwargs=True)

    def on_train_end(self, args, state, control, **kw):
        if self._handle is not None:
            self._handle.remove()


@dataclass
class StepCheck:
    """The engine's first step against the hand-written one."""

    engine_loss: float  # the loss the model returned inside the Trainer
    engine_logged_loss: float  # what ftlab logged for step 1
    engine_grad_norm: float | None
    hand_loss: float
    hand_grad_norm: float
    max_weight_diff: float  # largest |engine - hand| over every updated weight
    max_update: float  # largest |after - before| (the size of the step itself)
    params_compared: int
    batch_shape: tuple[int, int]
    answer_tokens: int

    @property
    def loss_diff(self) -> float:
        return abs(self.engine_loss - self.hand_loss)

    def same(self, loss_tol: float = 1e-5, weight_tol: float = 1e-6) -> bool:
        return self.loss_diff <= loss_tol and self.max_weight_diff <= weight_tol

    def __str__(self) -> str:
        return (f"batch {self.batch_shape[0]} x {self.batch_shape[1]} tokens, "
                f"{self.answer_tokens} answer tokens\n"
                f"loss      engine {self.engine_loss:.6f}   by hand {self.hand_loss:.6f}   "
                f"|diff| {self.loss_diff:.2e}\n"
                f"grad norm engine {self.engine_grad_norm:.4f}   by hand "
                f"{self.hand_grad_norm:.4f}\n"
                f"weights   {self.params_compared:,} compared: largest step "
                f"{self.max_update:.2e}, largest |engine - by hand| {self.max_weight_diff:.2e}")


def engine_first_step(config: RunConfig, **train_kwargs):
    """One real step through ``ftlab.engine``: (run, recorder)."""
    from ..engine import train

    rec = FirstStepRecorder()
    run = train(config.replace(steps=1, eval_every=1, **{"eval.samples": 0}),
                callbacks=[rec], **train_kwargs)
    return run, rec


def check_against_engine(run, rec: FirstStepRecorder) -> StepCheck:
    """Replay the engine's first step by hand on the same batch from the same weights.

    The engine's updated weights are kept aside, the model is put back to its starting
    weights, ``training_step`` runs on the recorded batch, and the two results are compared.
    """
    model, t = run.model, run.config.train
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    engine_after = {n: p.detach().clone() for n, p in named.items()}
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(rec.before[n])
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in rec.batch.items()}
    out = training_step(model, batch, AdamState(), t.learning_rate, t.max_grad_norm,
                        t.weight_decay)
    diff = update = 0.0
    for n, p in named.items():
        diff = max(diff, float((p.detach() - engine_after[n]).abs().max()))
        update = max(update, float((engine_after[n] - rec.before[n]).abs().max()))
    step1 = run.steps[0]
    return StepCheck(engine_loss=rec.loss, engine_logged_loss=step1["loss"],
                     engine_grad_norm=step1.get("grad_norm"), hand_loss=out["loss"],
                     hand_grad_norm=out["grad_norm"], max_weight_diff=diff,
                     max_update=update, params_compared=sum(p.numel() for p in named.values()),
                     batch_shape=tuple(batch["input_ids"].shape),
                     answer_tokens=int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()))
