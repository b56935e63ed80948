"""Batched greedy generation and the CPU thread setup (tiny model; no real model loaded)."""

from __future__ import annotations

import types

import pytest
import torch

from ftlab import load_model
from ftlab.generation import (
    MAX_BATCH,
    auto_batch_size,
    chat_prompt,
    generate_answers,
    kv_bytes_per_token,
    row_bytes,
)
from ftlab.threads import (
    CpuShare,
    _cgroup_usage,
    _proc_stat_busy,
    cgroup_cpu_limit,
    configure,
    usable_cpus,
)

# prompts of very different lengths, not in length order, so batches need padding
CHATS = [[{"role": "user", "content": c}] for c in (
    "Hi.",
    "Write a long answer about the history of the printing press in Europe and Asia, "
    "with dates, names and places, and explain why it mattered so much.",
    "What is 2 + 2?",
    "Name three colours.",
    "Summarise the plot of a story about a dragon who learns to read, in two sentences.",
    "Yes?",
    "Translate 'good morning' into French and Spanish.",
)]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu", dtype="float32")


def tokens(answers):
    return [a.raw for a in answers]


def test_greedy_answers_do_not_depend_on_batch_size(tiny):
    model, tok = tiny
    one = generate_answers(model, tok, CHATS, max_new_tokens=12, batch_size=1)
    for batch_size in (2, 3, len(CHATS), None):
        got = generate_answers(model, tok, CHATS, max_new_tokens=12, batch_size=batch_size)
        assert tokens(got) == tokens(one), batch_size


def test_answers_come_back_in_the_order_of_the_prompts(tiny):
    model, tok = tiny
    answers = generate_answers(model, tok, CHATS, max_new_tokens=6, batch_size=3)
    assert [a.prompt for a in answers] == [chat_prompt(tok, c) for c in CHATS]
    for chat, ans in zip(CHATS, answers):  # each equals the answer to its prompt alone
        [alone] = generate_answers(model, tok, [chat], max_new_tokens=6, batch_size=1)
        assert ans.raw == alone.raw and ans.n_tokens == alone.n_tokens


def test_generation_leaves_the_tokenizer_as_it_was(tiny):
    model, tok = tiny
    backend = getattr(tok, "_tokenizer", None)
    before = (tok.padding_side, tok.truncation_side, tok.pad_token_id,
              backend.padding if backend else None, backend.truncation if backend else None)
    seen = []  # the padding side while the model runs: another thread may use it then
    hook = model.register_forward_hook(lambda *_: seen.append(tok.padding_side))
    try:
        generate_answers(model, tok, CHATS, max_new_tokens=4, batch_size=4, progress=True)
    finally:
        hook.remove()
    after = (tok.padding_side, tok.truncation_side, tok.pad_token_id,
             backend.padding if backend else None, backend.truncation if backend else None)
    assert after == before
    assert seen and set(seen) == {before[0]}


@pytest.mark.parametrize("method", ["lora", "prefix", "prompt"])
def test_adapted_models_answer_alike_in_any_batch(method):
    """peft wraps generate() for prefix and prompt tuning (virtual tokens in front of the
    left padding): a batch must still give each row its own answer."""
    from ftlab import apply_method, method_config
    from ftlab.models import resolve_source

    base, tok = load_model("tiny", device="cpu", dtype="float32")
    torch.manual_seed(0)
    model = apply_method(base, method_config(method), tok, resolve_source("tiny"))
    one = generate_answers(model, tok, CHATS, max_new_tokens=8, batch_size=1)
    assert tokens(generate_answers(model, tok, CHATS, max_new_tokens=8)) == tokens(one)


def test_progress_bar_does_not_change_the_answers(tiny):
    model, tok = tiny
    plain = generate_answers(model, tok, CHATS, max_new_tokens=8, batch_size=4)
    shown = generate_answers(model, tok, CHATS, max_new_tokens=8, batch_size=4, progress=True)
    assert tokens(shown) == tokens(plain)
    assert generate_answers(model, tok, [], progress=True) == []


def _fake_model(layers=30, hidden=576, heads=9, kv_heads=3, inter=1536, vocab=49152):
    """Something with SmolLM2-135M's config and fp32 parameters, without its weights."""
    m = torch.nn.Linear(1, 1)
    m.config = types.SimpleNamespace(num_hidden_layers=layers, hidden_size=hidden,
                                     num_attention_heads=heads, num_key_value_heads=kv_heads,
                                     intermediate_size=inter, vocab_size=vocab)
    return m


def test_kv_cache_of_smollm2_is_46_kB_a_token():
    assert kv_bytes_per_token(_fake_model()) == 30 * 2 * 3 * 64 * 4 == 46_080


def test_batch_is_the_largest_that_fits_the_budget():
    m = _fake_model()
    per_row = row_bytes(m, 60, 160)
    assert per_row > kv_bytes_per_token(m) * 220  # the cache alone is a lower bound
    assert auto_batch_size(m, 60, 160, budget_bytes=10 * per_row) == 10
    assert auto_batch_size(m, 60, 160, budget_bytes=10 * per_row - 1) == 9
    assert auto_batch_size(m, 60, 160, budget_bytes=1) == 1
    assert auto_batch_size(m, 60, 160, budget_bytes=10**15) == MAX_BATCH
    assert auto_batch_size(m, 60, 1000, budget_bytes=10**9) \
        < auto_batch_size(m, 60, 100, budget_bytes=10**9)


# --- threads: how many CPUs this process may use ---------------------------------------


def _cgroup(tmp_path, lines, files):
    """A fake /sys/fs/cgroup tree and /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text("\n".join(lines) + "\n")
    return root, proc


def test_cgroup_v2_quota_is_read_from_the_process_cgroup_and_its_parents(tmp_path):
    root, proc = _cgroup(tmp_path, ["0::/kubepods/pod1/box"], {
        "cpu.max": "max 100000",
        "kubepods/pod1/cpu.max": "150000 100000",  # a parent's quota binds too
        "kubepods/pod1/box/cpu.max": "max 100000",
    })
    assert cgroup_cpu_limit(root, proc) == 1.5


def test_cgroup_without_quota_gives_none(tmp_path):
    root, proc = _cgroup(tmp_path, ["0::/"], {"cpu.max": "max 100000"})
    assert cgroup_cpu_limit(root, proc) is None
    assert cgroup_cpu_limit(tmp_path / "nowhere", tmp_path / "no_proc") is None


def test_cgroup_v1_quota(tmp_path):
    root, proc = _cgroup(tmp_path, ["4:cpu,cpuacct:/docker/abc", "1:memory:/docker/abc"], {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
    })
    assert cgroup_cpu_limit(root, proc) == 2.0
    root, proc = _cgroup(tmp_path / "b", ["1:cpu:/"], {
        "cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(root, proc) is None


def test_usable_cpus_is_the_affinity_capped_by_the_quota():
    assert usable_cpus(affinity=64, quota=2.0) == 2  # a container on a big host
    assert usable_cpus(affinity=64, quota=1.5) == 2  # a fractional quota rounds up
    assert usable_cpus(affinity=4, quota=None) == 4
    assert usable_cpus(affinity=2, quota=8.0) == 2  # pinned to 2 of the host's cores
    assert usable_cpus(affinity=8, quota=0.25) == 1


def test_configure_sets_threads_and_a_short_spin_before_torch_loads():
    env: dict[str, str] = {}
    choice = configure(env, cpus=(2, 64), torch_loaded=False)
    assert env == {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": str(choice["set"]["GOMP_SPINCOUNT"])}
    assert choice["threads"] == 2
    env = {}
    configure(env, cpus=(4, 4), torch_loaded=False)  # default thread count already right
    assert "OMP_NUM_THREADS" not in env and "GOMP_SPINCOUNT" in env


def test_configure_never_overrides_the_users_settings():
    env = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    configure(env, cpus=(2, 64), torch_loaded=False)
    assert env == {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}
    env = {"GOMP_SPINCOUNT": "5"}
    configure(env, cpus=(2, 2), torch_loaded=False)
    assert env == {"GOMP_SPINCOUNT": "5"}
    env = {"FTLAB_THREADS": "off"}
    assert configure(env, cpus=(2, 64), torch_loaded=False)["policy"] == "off"
    assert env == {"FTLAB_THREADS": "off"}
    env = {"FTLAB_THREADS": "1"}
    configure(env, cpus=(2, 2), torch_loaded=False)
    assert env["OMP_NUM_THREADS"] == "1"


def test_configure_after_torch_keeps_a_thread_count_the_user_set():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # the user's choice: differs from the affinity default
        choice = configure({}, cpus=(3, 4), torch_loaded=True)
        assert torch.get_num_threads() == 1 and choice["set"] == {}
    finally:
        torch.set_num_threads(before)


# --- threads: sharing the CPUs with a neighbour, while running --------------------------


class FakeCpus:
    """A clock, the busy CPU seconds of our CPUs and our own CPU seconds, set by the test."""

    def __init__(self):
        self.t = self.busy = self.own = 0.0

    def advance(self, seconds: float, ours: float, others: float) -> None:
        """``seconds`` pass; we use ``ours`` CPUs, other processes ``others``."""
        self.t += seconds
        self.own += ours * seconds
        self.busy += (ours + others) * seconds

    def share(self, usable: int = 2) -> CpuShare:
        return CpuShare(usable=usable, interval=1.0, busy=lambda: self.busy,
                        own=lambda: self.own, clock=lambda: self.t)


def test_a_busy_neighbour_takes_a_thread_and_gives_it_back():
    cpus = FakeCpus()
    share = cpus.share()
    cpus.advance(1.0, ours=2.0, others=0.0)
    assert share.measure() == 2  # alone: every usable CPU
    cpus.advance(1.0, ours=1.3, others=0.7)  # a neighbour starts
    assert share.measure() == 1
    cpus.advance(0.5, ours=1.0, others=1.0)
    assert share.measure() is None  # not a full window yet
    cpus.advance(0.5, ours=1.0, others=1.0)
    assert share.measure() == 1
    cpus.advance(1.0, ours=2.0, others=0.0)  # it has finished
    assert share.measure() == 2


def test_light_background_load_does_not_cost_a_thread():
    cpus = FakeCpus()
    share = cpus.share(usable=4)
    cpus.advance(1.0, ours=3.5, others=0.5)  # a notebook server, a browser tab
    assert share.measure() == 4
    cpus.advance(1.0, ours=2.0, others=2.0)
    assert share.measure() == 2
    cpus.advance(1.0, ours=1.0, others=8.0)  # never below one thread
    assert share.measure() == 1


def test_poll_sets_this_threads_count_unless_the_user_chose_one():
    before = torch.get_num_threads()
    cpus = FakeCpus()
    share = cpus.share(usable=2)
    try:
        torch.set_num_threads(2)
        cpus.advance(1.0, ours=1.0, others=1.0)
        assert share.poll() == 1 and torch.get_num_threads() == 1
        cpus.advance(1.0, ours=2.0, others=0.0)
        assert share.poll() == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(1)  # the user's own choice: kept
        cpus.advance(1.0, ours=1.0, others=0.0)
        share.poll()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cpu_time_is_read_from_proc_stat_and_cgroups(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  300 0 100 900 0 0 0 0 0 0\n"
                    "cpu0 100 0 50 400 7 0 0 0 0 0\n"
                    "cpu1 200 0 50 500 0 0 0 5 0 0\n"
                    "intr 12345\n")
    tick = __import__("os").sysconf("SC_CLK_TCK")
    assert _proc_stat_busy({1}, str(stat)) == 250 / tick  # cpu1 only; idle, steal excluded
    assert _proc_stat_busy(None, str(stat)) == 400 / tick
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    assert _cgroup_usage(v2, tmp_path) == 2.5
    v1 = tmp_path / "cpuacct" / "docker"
    v1.mkdir(parents=True)
    (v1 / "cpuacct.usage").write_text("1500000000\n")
    assert _cgroup_usage(tmp_path / "cpu" / "docker", tmp_path) == 1.5


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_shrinking_batch_decodes_what_generate_decodes(tiny, method):
    """``greedy_decode`` drops rows as they end; ``model.generate`` keeps them. Same tokens.
    The tiny random model seldom says its real end-of-turn token, so the 'end' here is a token
    it does say mid-answer: rows end at different steps, and the batch shrinks."""
    from ftlab.generation import greedy_decode
    from ftlab.methods import Lora, apply_method

    tok = tiny[1]
    model = load_model("tiny", device="cpu", dtype="float32")[0]
    if method == "lora":
        model = apply_method(model, Lora(r=4), tok, "tiny")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights that vary the answers: the tiny model only says "\n"
        for name, p in model.named_parameters():
            if method == "full" or "lora_B" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    prompts = [chat_prompt(tok, c) for c in CHATS]
    ids = tok(prompts, add_special_tokens=False)["input_ids"]
    width, pad = max(map(len, ids)), tok.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    model.eval()
    with torch.no_grad():
        free = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=16,
                              do_sample=False, pad_token_id=pad, eos_token_id=None)
    said = free[:, width:].tolist()
    def first(t, row):
        return row.index(t) if t in row else len(row)

    end = max({t for row in said for t in row},  # the token rows first say at most steps apart
              key=lambda t: len({first(t, row) for row in said}))
    with torch.no_grad():
        ref = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=16,
                             do_sample=False, pad_token_id=pad, eos_token_id=end)
    expected = [row[:row.index(end) + 1] if end in row else row
                for row in ref[:, width:].tolist()]
    got = greedy_decode(model, input_ids, mask, 16, end)
    assert got == expected
    lengths = sorted(map(len, got))
    assert lengths[0] < 16 and lengths[0] < lengths[-1], lengths  # rows ended apart
