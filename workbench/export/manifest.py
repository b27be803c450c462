"""The figure manifest: the one builder of its dict, its reader, and the library versions it records.

The manifest holds the figure spec that :func:`workbench.recipes.build_figure` takes, so
``workbench export --manifest retrieval.manifest.json --out elsewhere/`` writes the same
CSV (byte for byte) and the same pictures again.

A manifest is data, never authority (someone may have mailed it, or edited it):
:func:`read_manifest` checks its structure once against `MANIFEST_SCHEMA` (the field's
path in the message) and refuses a spec that asks to run the model's own code or to reach
the network unless the reader's command line allows it (`recipes.spec.CODE_SWITCHES`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import importlib.metadata
import json
import platform
import shlex
from collections.abc import Collection
from pathlib import Path
from typing import Any

from workbench import __version__
from workbench.errors import ExportError
from workbench.fileio import ListOf, Obj, OneOf, schema_problems
from workbench.recipes.spec import SPEC_SCHEMA, refuse_code_switches

__all__ = ["MANIFEST_FORMAT", "MANIFEST_SCHEMA", "MANIFEST_SUFFIX", "build_manifest", "library_versions",
           "read_manifest"]

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
_NONE = type(None)
EXPORT_SCHEMA = Obj({"formats": ListOf(str), "width_in": OneOf((float, str)), "height_in": (float, _NONE),
                     "dpi": int, "title": bool, "png_px": ListOf(int)})
"""The export options a manifest records (what `export --manifest` renders again)."""
MANIFEST_SCHEMA = Obj({"format": str, "format_version": int, "name": str, "spec": SPEC_SCHEMA,
                       "export": EXPORT_SCHEMA, "caption": (str, _NONE), "files": dict, "commands": dict,
                       "versions": dict}, required=("format",))
"""The structure of a figure manifest (types and nesting) that :func:`read_manifest` checks."""

_VERSIONED = ("workbench", "multilingual-workbench", "torch", "transformers", "nnsight", "plotly", "kaleido",
              "numpy", "pandas", "pyarrow", "scikit-learn")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape a figure's numbers and pixels."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    if out.get("multilingual-workbench"):
        out["workbench"] = out.pop("multilingual-workbench")
    else:
        out.pop("multilingual-workbench", None)
        out["workbench"] = __version__
    return out



def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy (tuples to lists, numpy scalars to Python)."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def build_manifest(manifest: dict[str, Any] | None, paths: dict[str, Path], export: dict[str, Any],
                   data_sha: str, *, portable: bool = False) -> dict[str, Any]:
    """The manifest dict :func:`workbench.export.files.export_figure` writes next to a figure.

    Args:
        manifest: provenance from the caller (spec, model, corpus, parameters); copied as plain JSON.
        paths: every file of the export by kind (:func:`workbench.export.files.target_paths`),
            including ``"manifest"``.
        export: the export options (formats, sizes, dpi, title, PNG pixels).
        data_sha: sha256 hex digest of the CSV bytes.
        portable: the files travel (a zip): commands name the manifest by its file name, to
            run in the folder it is unpacked into, instead of by its absolute path.

    Returns:
        ``manifest`` plus format, name, creation time, export options, file names, data hash,
        library versions and the commands that regenerate the files.
    """
    out = _jsonable(copy.deepcopy(manifest or {}))
    mpath = paths["manifest"].name if portable else paths["manifest"].resolve()
    commands = dict(out.get("commands") or {})
    if portable:
        out["commands_run_in"] = "the folder the export zip was unpacked into"
    if out.get("spec"):
        commands["regenerate"] = shlex.join(["workbench", "export", "--manifest", str(mpath), "--overwrite"])
        commands["regenerate_elsewhere"] = shlex.join(["workbench", "export", "--manifest", str(mpath),
                                                       "--out", "DIR"])
    else:
        commands.setdefault("regenerate", None)
    out.update(
        format="workbench-figure-manifest",
        format_version=MANIFEST_FORMAT,
        name=paths["manifest"].name[: -len(MANIFEST_SUFFIX)],
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        export=export,
        files={k: p.name for k, p in paths.items() if k != "manifest"},
        data_sha256=data_sha,
        versions=library_versions(),
        commands=commands,
    )
    return out


def read_manifest(path: str | Path, *, allow: Collection[str] = ()) -> dict[str, Any]:
    """Read and check a figure manifest written by :func:`export_figure`.

    Args:
        path: the ``*.manifest.json`` file.
        allow: the switches the reader's command line allows (``"trust_remote_code"``,
            ``"remote"``); a spec setting any other refuses to load.

    Raises:
        ExportError: not a figure manifest; a field of the wrong type or nesting (named by
            its path, e.g. ``spec.langs[1]``); a newer format; no spec to rebuild the
            figure; a switch the command line did not allow.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no manifest at {p}")
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(m, dict) or m.get("format") != "workbench-figure-manifest":
        raise ExportError(f"{p} is not a workbench figure manifest (no format 'workbench-figure-manifest')")
    problems = schema_problems(m, MANIFEST_SCHEMA)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ExportError(f"{p}: {problems[0]}{more}")
    if m.get("format_version", 0) > MANIFEST_FORMAT:
        raise ExportError(f"{p} has manifest format {m.get('format_version')}; this workbench reads "
                          f"up to {MANIFEST_FORMAT}")
    if not m.get("spec"):
        raise ExportError(f"{p} has no figure spec, so it cannot be regenerated")
    refuse_code_switches(m["spec"], source=str(p), allow=allow, path="spec")
    return m


