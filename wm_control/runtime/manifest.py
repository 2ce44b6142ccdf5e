"""An export folder and its manifest: ``model.json`` holds the model contract and the sha256 of every
file the export wrote, so a reader refuses a modified, truncated or mixed-in file before it runs it.

``open_export`` checks every listed file against its hash, then every ONNX file's embedded contract
against ``model.json``, field by field, before any backend reads a weight; backends then open files
through ``export_file``, which refuses one that ``model.json`` does not list. A decode error of any
file becomes one ``ExportError`` line naming the file; a contract that differs is a
``ModelContractError`` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from wm_control.contract import CONTRACT_VERSION, ModelContract, first_difference
from wm_control.errors import ExportError, ModelContractError

__all__ = [
    "MODEL_JSON",
    "WEIGHTS_FILE",
    "Export",
    "embedded_contract",
    "export_file",
    "open_export",
    "publish",
    "read_export",
    "sha256_file",
    "write_model_json",
]

MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.safetensors"
_CHUNK = 1 << 20


class Export(NamedTuple):
    """An export folder: its contract and the sha256 of each file by name (``model.json``'s ``files``)."""

    folder: Path
    contract: ModelContract
    files: dict[str, str]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def publish(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the mode of a new file under the current umask (writers that use private temp
    files leave 0600) and rename it to ``target`` atomically.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)


def write_model_json(folder: str | Path, contract: ModelContract, files: Iterable[str | Path]) -> Path:
    """Write ``model.json``: the contract and the sha256 of each of ``files`` (paths in ``folder``)."""
    folder = Path(folder)
    hashes = {Path(f).name: sha256_file(folder / Path(f).name) for f in files}
    target = folder / MODEL_JSON
    tmp = target.with_name(f".{MODEL_JSON}.tmp")
    tmp.write_text(json.dumps({**contract.to_dict(), "files": hashes}, indent=2, sort_keys=True))
    publish(tmp, target)
    return target


def read_export(folder: str | Path) -> Export:
    """The contract and file hashes in ``folder/model.json``.

    Raises:
        ModelContractError: no ``model.json``, or its contract is incomplete or of another version.
        ExportError: ``model.json`` is not valid JSON or lacks its file list.
    """
    path = Path(folder) / MODEL_JSON
    if not path.exists():
        raise ModelContractError(f"{path} not found; is {folder} a wm-control-export folder?")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path} is not valid JSON ({exc}): truncated or modified after export; re-export") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} holds a {type(data).__name__}, not a model contract; re-export")
    version = data.get("format_version")
    if version != CONTRACT_VERSION:
        raise ModelContractError(
            f"{path}: contract format_version {version!r} is not supported (this build reads {CONTRACT_VERSION}); "
            "re-export the model with this version's wm-control-export"
        )
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ExportError(f"{path} lacks the sha256 list of the exported files ('files'); re-export")
    return Export(Path(folder), ModelContract.from_dict(data), dict(files))


def export_file(export: Export, name: str) -> Path:
    """``folder/name``, a file that ``model.json`` lists (``open_export`` verified its hash).

    Raises:
        ExportError: the export has no such file.
    """
    if name not in export.files:
        raise ExportError(
            f"{export.folder / name} is not part of this export (model.json lists {sorted(export.files)}); "
            "export it with wm-control-export"
        )
    return export.folder / name


def embedded_contract(path: str | Path) -> dict[str, Any]:
    """The contract stored in an ONNX file's ``metadata_props`` (plain data).

    Raises:
        ExportError: the file is not a readable ONNX model.
        ModelContractError: it has no wm-control metadata.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as exc:
        raise ExportError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    return ModelContract.from_metadata(props).to_dict()


def open_export(folder: str | Path) -> Export:
    """Read ``model.json`` and verify the whole export before anything runs it: every listed file
    exists and has its recorded sha256, and every ONNX file embeds exactly ``model.json``'s contract.

    Raises:
        ModelContractError, ExportError: as ``read_export``; a file missing, modified, truncated or
            from another export (named); an embedded contract that differs (file and field named).
    """
    export = read_export(folder)
    for name, expected in sorted(export.files.items()):
        path = export.folder / name
        if not path.exists():
            raise ExportError(f"{path} not found (model.json lists it); copy the whole export folder")
        digest = sha256_file(path)
        if digest != expected:
            raise ExportError(
                f"{path}: sha256 {digest[:16]}... differs from model.json's {expected[:16]}...: the file was "
                "modified, truncated or comes from another export; re-export or copy the folder again"
            )
    for name in sorted(n for n in export.files if n.endswith(".onnx")):
        embedded = embedded_contract(export.folder / name)
        where = first_difference(export.contract.to_dict(), embedded)
        if where is not None:
            raise ModelContractError(
                f"{export.folder / name}: its embedded contract field {where!r} differs from model.json: the files "
                "come from different exports, or model.json was edited; re-export"
            )
    return export
