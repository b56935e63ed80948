"""Shared fixtures: run folders go to a temporary directory; models come from the cache."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

from ftlab.data.formats import IGNORE_INDEX, encode


@pytest.fixture(autouse=True, scope="session")
def _runs_dir(tmp_path_factory):
    os.environ["FTLAB_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    yield


@pytest.fixture
def readonly_dir(tmp_path):
    """An empty folder nobody may write to (a read-only tmpfs when running as root)."""
    d = tmp_path / "readonly"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(d)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("root without mount: no way to make a read-only folder here")
    yield d
    subprocess.run(["umount", str(d)], check=False)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


@torch.no_grad()
def dataset_loss(model, tok, rows, fmt: str = "chat") -> float:
    """Mean next-token loss over completion tokens of rows (as training sees them)."""
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for row in rows:
        enc = encode(row, tok, fmt, 256)
        ids = torch.tensor([enc["input_ids"]], device=device)
        labels = torch.tensor([enc["labels"]], device=device)
        out = model(input_ids=ids, labels=labels)
        n = int((labels[:, 1:] != IGNORE_INDEX).sum())
        total += float(out.loss) * n
        count += n
    model.train(was_training)
    return total / count
