"""Uploaded language models: read weights safely, check them, store them.

A model upload is three things from a user: a weights file, a vocabulary and,
when the weights alone do not say everything, a small JSON config
(:class:`~workers.core.rnnlm.RNNSpec`). All three are hostile until checked.

Weights are recognised by their content, never by their name:

* **safetensors**: the header is parsed and validated here (its length, every
  dtype, shape and byte range, no overlaps) before a single tensor byte is read,
  and the tensors are then read with plain file reads;
* **PyTorch state dicts** written by ``torch.save`` (zip or legacy format) are
  loaded only with ``torch.load(weights_only=True, map_location="cpu")``, which
  refuses any pickle that names a function or class outside torch's small
  allowlist, so no code from the file ever runs. TorchScript archives are
  refused from their zip directory before torch sees them (loading one runs
  its code), and a zip whose entries would unpack to more than the upload limit
  is refused before torch reads it.

When torch refuses a pickle, the file's opcodes are scanned (``pickletools``
decodes them without executing anything) to tell the user *what* it would have
imported: a whole pickled model (``torch.save(model)``) gets a different hint
than a pickle that calls ``os.system``.

Architecture: the parameter names are those of the PyTorch word-language-model
example (see :mod:`workers.core.rnnlm`). The cell type, sizes, number of layers
and tying are read off the shapes; only a plain RNN's nonlinearity (tanh or
relu) is invisible in the weights and must be declared.

A checked model is stored as a directory written atomically (temp sibling,
fsync, rename: :func:`workers.core.atomic.atomic_dir`)::

    manifest.json         {"format": "statelab-model", "version": 1,
                           "spec": {...}, "vocab_size": V, "parameters": n,
                           "weights": "weights.safetensors", "meta": {...}}
    spec.json             RNNSpec.to_json()
    vocab.json            list of V strings, index = token id
    weights.safetensors   float32 tensors in the word-language-model layout;
                          a tied model stores ``encoder.weight`` only

torch and safetensors are imported inside the functions that need them, so the
web process can import this module for its types without loading torch.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.core.atomic import atomic_dir, write_json_synced
from workers.core.errors import InputError
from workers.core.files import dir_size, sha256_file
from workers.core.lstmvis import dictionary_lines
from workers.core.store import read_manifest_json

if TYPE_CHECKING:
    import torch

    from workers.core.rnnlm import RNNLanguageModel, RNNSpec

__all__ = [
    "MODEL_FORMAT",
    "LoadedModel",
    "ModelInfo",
    "check_shapes",
    "load_model",
    "model_upload",
    "read_vocab",
    "read_weights",
    "recognise_spec",
    "save_model",
]

MODEL_FORMAT = "statelab-model"
MODEL_FORMAT_VERSION = 1
WEIGHTS_NAME = "weights.safetensors"

SAVE_HINT = "save model.state_dict() with torch.save, or save it as safetensors"

# torch.load(weights_only=True) is only trusted from this version on.
_MIN_TORCH = (2, 10)

# safetensors: the reference implementation caps its JSON header at 100 MB.
_ST_MAX_HEADER = 100 << 20
_ST_MAX_TENSORS = 100_000
_ST_MAX_RANK = 8

# A state dict's pickle is small (names and shapes); this bounds what the
# message scanner reads from a zip before giving up.
_MAX_PICKLE_BYTES = 256 << 20

# Keys under which training scripts commonly wrap the state dict in a checkpoint.
_WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "model_state",
    "net",
    "network",
    "weights",
    "params",
)

# Modules whose functions run code or touch the system when a pickle calls them.
_CODE_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "builtins",
        "__builtin__",
        "sys",
        "shutil",
        "socket",
        "importlib",
        "runpy",
        "pty",
        "webbrowser",
        "ctypes",
        "pickle",
        "_pickle",
        "marshal",
        "code",
        "codeop",
        "pdb",
        "operator",
        "functools",
        "types",
        "io",
        "_io",
        "platform",
        "multiprocessing",
        "asyncio",
        "threading",
        "signal",
        "tempfile",
        "urllib",
        "http",
        "requests",
    }
)

_MAX_VOCAB = 2_000_000
_MAX_DICT_ID = (1 << 24) - 1
_DICT_SNIFF = re.compile(r"(.*?)\s+(\d+)\s*")
_LIST_LIMIT = 8


@dataclass
class LoadedModel:
    """A stored model ready to run: the module is in eval mode on its device."""

    model: RNNLanguageModel
    spec: RNNSpec
    vocab: list[str]
    meta: dict[str, Any]


@dataclass
class ModelInfo:
    """What an upload stored: enough for the database row and the user's answer."""

    spec: RNNSpec
    vocab_size: int
    parameters: int
    source_format: str  # "safetensors", "torch-zip" or "torch-legacy"
    size_bytes: int  # bytes of the stored model directory
    sha256: str  # of the stored weights.safetensors
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "vocab_size": self.vocab_size,
            "parameters": self.parameters,
            "source_format": self.source_format,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def _some(items: list[str], limit: int = _LIST_LIMIT) -> str:
    """``a, b, c and 5 more``: keeps messages short whatever the list length."""
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])} and {len(items) - limit} more"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _require_safe_torch() -> None:
    import torch

    parts = re.match(r"(\d+)\.(\d+)", torch.__version__)
    version = (int(parts.group(1)), int(parts.group(2))) if parts else (0, 0)
    if version < _MIN_TORCH:
        raise RuntimeError(
            f"torch {torch.__version__} is too old to load uploaded weights safely; "
            f"{_MIN_TORCH[0]}.{_MIN_TORCH[1]} or later is required"
        )


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(int(d)) for d in t.shape) + ")"


# --------------------------------------------------------------------------- #
# Weights: safetensors
# --------------------------------------------------------------------------- #


def _st_dtypes() -> dict[str, torch.dtype]:
    import torch

    table = {
        "F64": torch.float64,
        "F32": torch.float32,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "I64": torch.int64,
        "I32": torch.int32,
        "I16": torch.int16,
        "I8": torch.int8,
        "U8": torch.uint8,
        "BOOL": torch.bool,
    }
    for code, attr in (
        ("U16", "uint16"),
        ("U32", "uint32"),
        ("U64", "uint64"),
        ("F8_E4M3", "float8_e4m3fn"),
        ("F8_E5M2", "float8_e5m2"),
    ):
        dtype = getattr(torch, attr, None)
        if dtype is not None:
            table[code] = dtype
    return table


def _looks_like_safetensors(head: bytes) -> bool:
    """An 8-byte header length, then a JSON object (absurd lengths are refused later)."""
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") >= 2


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def _read_safetensors(path: Path, size: int) -> dict[str, torch.Tensor]:
    import torch

    dtypes = _st_dtypes()
    damaged = "the safetensors file is damaged or incomplete"
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > _ST_MAX_HEADER or n > size - 8:
            raise InputError(
                f"{damaged}: its header claims {n} bytes but "
                + (
                    f"headers are at most {_ST_MAX_HEADER} bytes"
                    if n > _ST_MAX_HEADER
                    else f"the file has only {size - 8} bytes after the length field"
                )
                + " (upload the complete file again)"
            )
        raw = fh.read(n)
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"{damaged}: its header is not valid JSON ({exc})") from None
        if not isinstance(header, dict):
            raise InputError(f"{damaged}: its header is not a JSON object")
        metadata = header.pop("__metadata__", None)
        if metadata is not None and not (
            isinstance(metadata, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise InputError(f"{damaged}: its __metadata__ is not a map of strings")
        if not header:
            raise InputError("the safetensors file holds no tensors")
        if len(header) > _ST_MAX_TENSORS:
            raise InputError(
                f"the safetensors file declares {len(header)} tensors; at most "
                f"{_ST_MAX_TENSORS} are accepted"
            )
        data_start = 8 + n
        data_len = size - data_start
        entries: list[tuple[int, int, str, torch.dtype, list[int]]] = []
        for name, info in header.items():
            where = f"{damaged}: tensor {name!r}"
            if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
                raise InputError(f"{where} needs exactly dtype, shape and data_offsets")
            code = info["dtype"]
            if not isinstance(code, str) or code not in dtypes:
                raise InputError(
                    f"tensor {name!r} has the unknown dtype {str(code)[:20]!r}; "
                    f"known are {', '.join(sorted(dtypes))}"
                )
            shape = info["shape"]
            if (
                not isinstance(shape, list)
                or len(shape) > _ST_MAX_RANK
                or not all(type(d) is int and d >= 0 for d in shape)
            ):
                raise InputError(f"{where} has an invalid shape {str(shape)[:60]}")
            offsets = info["data_offsets"]
            if (
                not isinstance(offsets, list)
                or len(offsets) != 2
                or not all(type(o) is int for o in offsets)
            ):
                raise InputError(f"{where} has invalid data_offsets {str(offsets)[:60]}")
            begin, end = offsets
            dtype = dtypes[code]
            nbytes = math.prod(shape) * dtype.itemsize
            if not 0 <= begin <= end:
                raise InputError(f"{where} has data_offsets [{begin}, {end}] out of order")
            if end > data_len:
                raise InputError(
                    f"{where} ends at byte {end} but the file has only {data_len} bytes "
                    "of tensor data (upload the complete file again)"
                )
            if end - begin != nbytes:
                raise InputError(
                    f"{where} takes {end - begin} bytes, but its shape {shape} of {code} "
                    f"needs {nbytes}"
                )
            entries.append((begin, end, name, dtype, shape))
        entries.sort()
        for (_b0, e0, n0, _d0, _s0), (b1, _e1, n1, _d1, _s1) in itertools.pairwise(entries):
            if b1 < e0:
                raise InputError(f"{damaged}: tensors {n0!r} and {n1!r} overlap")
        out: dict[str, torch.Tensor] = {}
        for begin, end, name, dtype, shape in entries:
            buf = torch.empty(end - begin, dtype=torch.uint8)
            if end > begin:
                fh.seek(data_start + begin)
                got = fh.readinto(buf.numpy().data)
                if got != end - begin:
                    raise InputError(f"{damaged}: tensor {name!r} is cut off")
            out[name] = buf.view(dtype).reshape(shape)
    return out


# --------------------------------------------------------------------------- #
# Weights: torch.save files
# --------------------------------------------------------------------------- #


def _check_torch_zip(path: Path, max_bytes: int) -> bytes:
    """Refuse TorchScript and zip bombs from the directory; return ``data.pkl``'s bytes."""
    damaged = "the file is a damaged or incomplete zip archive (upload the complete file again)"
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InputError(damaged) from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        parts = [n.split("/") for n in names]
        if any(
            p[-1] == "constants.pkl" or (len(p) > 2 and p[1] == "code") or p[0] == "code"
            for p in parts
        ):
            raise InputError(
                "this is a TorchScript archive (torch.jit.save): it holds code, and StateLab "
                f"never runs code from an upload; {SAVE_HINT}"
            )
        if any(n.endswith(".npy") for n in names):
            raise InputError(
                f"this is a NumPy .npz archive, which StateLab does not read as weights; {SAVE_HINT}"
            )
        pickles = [i for i in infos if i.filename.split("/")[-1] == "data.pkl"]
        if len(pickles) != 1:
            raise InputError(
                "this zip archive is not a file written by torch.save (it has no "
                f"single data.pkl); {SAVE_HINT}"
            )
        if any(i.flag_bits & 0x1 for i in infos):
            raise InputError("the zip archive has encrypted entries; upload an unencrypted file")
        unpacked = sum(i.file_size for i in infos)
        if unpacked > max_bytes:
            raise InputError(
                f"the archive would unpack to {_mib(unpacked)}, more than the "
                f"{_mib(max_bytes)} allowed for a model upload"
            )
        if pickles[0].file_size > _MAX_PICKLE_BYTES:
            return b""
        try:
            return zf.read(pickles[0])
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            raise InputError(damaged) from None


def _pickle_globals(data: bytes, max_pickles: int = 6) -> list[str]:
    """Names of the functions and classes a pickle stream would import.

    Decodes opcodes only (``pickletools.genops`` executes nothing). Several
    pickles in a row are scanned, as the legacy ``torch.save`` format writes
    five. Best effort: it feeds error messages, not security decisions.
    """
    found: list[str] = []
    stream = io.BytesIO(data)
    string_ops = {
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "SHORT_BINSTRING",
        "BINSTRING",
        "STRING",
    }
    for _ in range(max_pickles):
        start = stream.tell()
        pushed: list[Any] = []
        memo: dict[int, Any] = {}
        last: Any = None
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name in ("GLOBAL", "INST"):
                    found.append(str(arg).replace(" ", "."))
                    last = None
                elif name == "STACK_GLOBAL":
                    if len(pushed) >= 2 and all(isinstance(x, str) for x in pushed[-2:]):
                        found.append(f"{pushed[-2]}.{pushed[-1]}")
                    last = None
                elif name in string_ops:
                    pushed.append(arg)
                    last = arg
                elif name == "MEMOIZE":
                    memo[len(memo)] = last
                elif name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int):
                    memo[arg] = last
                elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                    last = memo.get(arg)
                    pushed.append(last)
                elif name != "FRAME":
                    last = None
        except Exception:
            break
        if stream.tell() <= start or stream.tell() >= len(data):
            break
    return found


def _allowed_globals() -> set[str]:
    try:
        from torch import _weights_only_unpickler as wou

        return set(wou._get_allowed_globals())
    except Exception:
        return {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2"}


def _refusal_for_global(name: str) -> InputError:
    module, _, attr = name.rpartition(".")
    root = module.split(".")[0]
    if root in _CODE_MODULES:
        what = (
            f"the file is a pickle that would call {name} while loading, which runs code on "
            "the server"
        )
    elif module.startswith("torch.nn") or module == "__main__" or attr[:1].isupper():
        what = (
            f"the file holds a pickled Python object ({name}), for example a whole model "
            "saved with torch.save(model), not just its weights; unpickling objects runs code"
        )
    else:
        what = f"the file is a pickle that would import {name} while loading, which can run code"
    return InputError(f"{what}. StateLab loads only plain tensors: {SAVE_HINT}")


def _torch_load(path: Path, pickle_bytes: bytes) -> Any:
    import torch

    _require_safe_torch()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        text = str(exc)
        match = re.search(r"GLOBAL ([\w.]+)", text)
        if match:
            raise _refusal_for_global(match.group(1)) from None
        allowed = _allowed_globals()
        bad = [
            g
            for g in _pickle_globals(pickle_bytes)
            if g not in allowed and not re.fullmatch(r"torch\.(cuda\.)?\w+Storage", g)
        ]
        if bad:
            raise _refusal_for_global(bad[0]) from None
        if "TorchScript" in text:
            raise InputError(
                "this is a TorchScript archive (torch.jit.save): it holds code, and StateLab "
                f"never runs code from an upload; {SAVE_HINT}"
            ) from None
        # torch's own wording is about its internals; the chained exception keeps
        # it for the worker's log.
        raise InputError(
            "the file could not be read as a PyTorch state dict: it is damaged or incomplete. "
            f"Upload the complete file again, or {SAVE_HINT}"
        ) from exc


def _as_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """The tensors of a loaded object: a state dict, or one wrapped in a checkpoint."""
    import torch

    def tensor_map(m: Mapping[Any, Any], where: str) -> dict[str, torch.Tensor]:
        bad = [
            f"{k!s} ({type(v).__name__})" for k, v in m.items() if not isinstance(v, torch.Tensor)
        ]
        if bad:
            raise InputError(
                f"{where} holds values that are not tensors: {_some(bad)}. The weights file "
                f"must hold tensors only; {SAVE_HINT}"
            )
        keys = [k for k in m if not isinstance(k, str)]
        if keys:
            raise InputError(
                f"{where} has keys that are not names: {_some([repr(k) for k in keys])}"
            )
        return {str(k): v for k, v in m.items()}

    if isinstance(obj, Mapping):
        if not obj:
            raise InputError(f"the file holds an empty dict, no weights; {SAVE_HINT}")
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return tensor_map(obj, "the state dict")
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                return tensor_map(inner, f"the checkpoint's {key!r} entry")
        return tensor_map(obj, "the file")
    if isinstance(obj, torch.Tensor):
        raise InputError(
            f"the file holds a single tensor, not a dict of named weights; {SAVE_HINT}"
        )
    raise InputError(
        f"the file holds a {type(obj).__name__}, not a dict of named tensors; {SAVE_HINT}"
    )


def _check_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import torch

    out: dict[str, torch.Tensor] = {}
    odd: list[str] = []
    for name, t in state_dict.items():
        if t.layout != torch.strided or t.is_quantized or t.is_nested or t.is_meta:
            odd.append(name)
            continue
        out[name] = t.detach() if isinstance(t, torch.nn.Parameter) else t
    if odd:
        raise InputError(
            f"these tensors are sparse, quantised or otherwise not plain dense tensors: "
            f"{_some(odd)}; save dense floating-point weights"
        )
    return out


def _read_weights_with_format(path: Path, *, max_bytes: int) -> tuple[dict[str, torch.Tensor], str]:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise InputError("the weights file could not be read") from None
    if size == 0:
        raise InputError("the weights file is empty")
    if size > max_bytes:
        raise InputError(
            f"the weights file is {_mib(size)}; at most {_mib(max_bytes)} may be uploaded"
        )
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        pickle_bytes = _check_torch_zip(path, max_bytes)
        return _check_tensors(_as_state_dict(_torch_load(path, pickle_bytes))), "torch-zip"
    if _looks_like_safetensors(head):
        return _check_tensors(_read_safetensors(path, size)), "safetensors"
    if head[:1] == b"\x80":
        with open(path, "rb") as fh:
            pickle_bytes = fh.read(min(size, _MAX_PICKLE_BYTES))
        return _check_tensors(_as_state_dict(_torch_load(path, pickle_bytes))), "torch-legacy"
    known = {
        b"\x89HDF": "an HDF5 file (for example Keras weights)",
        b"\x93NUMPY": "a NumPy .npy file",
        b"\x1f\x8b": "a gzip file",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            raise InputError(
                f"this is {what}, which StateLab does not read as weights; {SAVE_HINT}"
            )
    if head.lstrip()[:1] in (b"{", b"["):
        raise InputError(
            "this looks like a JSON file, not weights (a model config goes in the config "
            f"field); for the weights, {SAVE_HINT}"
        )
    raise InputError(f"the file is neither safetensors nor a torch.save file; {SAVE_HINT}")


def read_weights(
    path: Path, *, max_bytes: int, display_name: str | None = None
) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors or ``torch.save`` file, running no code.

    The format is recognised from the content. Returns CPU tensors by name (any
    dtype; :func:`check_shapes` demands floats). A checkpoint dict that wraps the
    state dict under ``state_dict``, ``model`` (and similar) keys is unwrapped.
    Everything else is an ``InputError`` naming ``display_name`` that says what
    to upload instead.
    """
    try:
        return _read_weights_with_format(path, max_bytes=max_bytes)[0]
    except InputError as exc:
        raise InputError(exc.message, file=display_name) from None


# --------------------------------------------------------------------------- #
# Vocabulary
# --------------------------------------------------------------------------- #


def _decode_text(data: bytes, filename: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the vocabulary is not UTF-8 text: the byte 0x{data[exc.start : exc.start + 1].hex()} "
            f"at offset {exc.start} cannot be decoded (save it as UTF-8)",
            file=filename,
        ) from None
    return text.removeprefix("\ufeff")


def _check_unique(tokens: list[str], filename: str) -> list[str]:
    if not tokens:
        raise InputError("the vocabulary is empty", file=filename)
    if len(tokens) > _MAX_VOCAB:
        raise InputError(
            f"the vocabulary has {len(tokens)} tokens; at most {_MAX_VOCAB} are supported",
            file=filename,
        )
    seen: dict[str, int] = {}
    dups: list[str] = []
    for i, tok in enumerate(tokens):
        j = seen.setdefault(tok, i)
        if j != i:
            dups.append(f"{tok!r} (ids {j} and {i})")
    if dups:
        raise InputError(
            f"every token must appear once, but these appear twice: {_some(dups)}", file=filename
        )
    return tokens


def _vocab_from_ids(pairs: list[tuple[int, str, str]], filename: str) -> list[str]:
    """Tokens by id from ``(id, token, where)`` triples; ids must be 0..n-1 exactly once."""
    by_id: dict[int, tuple[str, str]] = {}
    twice: list[str] = []
    for idx, tok, where in pairs:
        if idx in by_id:
            twice.append(f"{idx} ({by_id[idx][1]} and {where})")
        else:
            by_id[idx] = (tok, where)
    if twice:
        raise InputError(f"these ids are given twice: {_some(twice)}", file=filename)
    n = len(by_id)
    missing = [str(i) for i in range(n) if i not in by_id]
    if missing:
        raise InputError(
            f"ids must run from 0 to {n - 1} without gaps, but {_some(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (the largest id is {max(by_id)})",
            file=filename,
        )
    return _check_unique([by_id[i][0] for i in range(n)], filename)


def _vocab_from_json(text: str, filename: str) -> list[str]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"the vocabulary is not valid JSON ({exc})", file=filename) from None
    if isinstance(data, list):
        bad = [str(i) for i, t in enumerate(data) if not isinstance(t, str)]
        if bad:
            raise InputError(
                f"a JSON vocabulary is a list of strings; the items at {_some(bad)} are not",
                file=filename,
            )
        return _check_unique([str(t) for t in data], filename)
    if isinstance(data, dict):
        pairs: list[tuple[int, str, str]] = []
        for tok, idx in data.items():
            if type(idx) is not int or not 0 <= idx <= _MAX_DICT_ID:
                raise InputError(
                    f"in a JSON token-to-id map every id is a whole number from 0 to "
                    f"{_MAX_DICT_ID}; {tok!r} has {str(idx)[:20]}",
                    file=filename,
                )
            pairs.append((idx, tok, repr(tok)))
        if not pairs:
            raise InputError("the vocabulary is empty", file=filename)
        return _vocab_from_ids(pairs, filename)
    raise InputError(
        "a JSON vocabulary is a list of tokens (index = id) or a map from token to id",
        file=filename,
    )


def _vocab_from_dict(text: str, filename: str) -> list[str]:
    pairs = [
        (idx, token, f"line {lineno}")
        for lineno, token, idx in dictionary_lines(text, display_name=filename)
    ]
    if not pairs:
        raise InputError("the vocabulary is empty", file=filename)
    return _vocab_from_ids(pairs, filename)


def _vocab_from_lines(text: str, filename: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tokens: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        tok = raw.removesuffix("\r")
        if not tok.strip():
            raise InputError(
                f"line {lineno} is empty or only whitespace; with one token per line, tokens "
                "that are empty, spaces or newlines cannot be written; upload a JSON list of "
                'tokens instead (e.g. ["a", " ", "\\n"])',
                file=filename,
            )
        if tok != tok.strip():
            raise InputError(
                f"line {lineno} ({tok[:40]!r}) has spaces around its token; remove them, or "
                "upload a JSON list of tokens if they belong to the token",
                file=filename,
            )
        tokens.append(tok)
    return _check_unique(tokens, filename)


def _looks_like_dict(text: str) -> bool:
    lines = [ln.removesuffix("\r") for ln in text.split("\n") if ln.strip()]
    return len(lines) >= 1 and all(_DICT_SNIFF.fullmatch(ln) for ln in lines)


def read_vocab(data: bytes, filename: str) -> list[str]:
    """Parse an uploaded vocabulary into a list of tokens indexed by id.

    Accepted, decided by the extension and then by the content:

    * ``.json`` (or text starting with ``[`` / ``{`` that parses as JSON): a list
      of strings, index = id -- the only form that can hold tokens such as
      ``" "``, ``"\\n"`` or ``""`` -- or a map ``{token: id}``;
    * ``.dict``, or text whose every line is ``token id``: an LSTMVis dictionary;
      a line of whitespace and an id maps the id to ``" "``;
    * anything else: one token per line (trailing newline and ``\\r`` ignored).

    Ids must run 0..V-1 without gaps or repeats, and tokens must be unique.
    """
    name = filename or "vocabulary"
    text = _decode_text(data, name)
    if not text.strip():
        raise InputError("the vocabulary file is empty", file=name)
    suffix = os.path.splitext(name.replace("\\", "/").rsplit("/", 1)[-1])[1].lower()
    first = text.lstrip()[:1]
    if suffix == ".json":
        return _vocab_from_json(text, name)
    if first in ("[", "{"):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            return _vocab_from_json(text, name)
    if suffix == ".dict" or _looks_like_dict(text):
        return _vocab_from_dict(text, name)
    return _vocab_from_lines(text, name)


# --------------------------------------------------------------------------- #
# Architecture
# --------------------------------------------------------------------------- #

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_TYPE_BY_GATES = {4: "LSTM", 3: "GRU"}


def _expected_shapes(spec: RNNSpec) -> dict[str, tuple[int, ...]]:
    g = _GATES[spec.rnn_type]
    h, e, v = spec.hidden_size, spec.embedding_size, spec.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"encoder.weight": (v, e)}
    for k in range(spec.layers):
        shapes[f"rnn.weight_ih_l{k}"] = (g * h, e if k == 0 else h)
        shapes[f"rnn.weight_hh_l{k}"] = (g * h, h)
        shapes[f"rnn.bias_ih_l{k}"] = (g * h,)
        shapes[f"rnn.bias_hh_l{k}"] = (g * h,)
    shapes["decoder.weight"] = (v, h)
    shapes["decoder.bias"] = (v,)
    return shapes


def _layout_error(state_dict: Mapping[str, Any]) -> InputError:
    found = _some(sorted(state_dict), 6) or "nothing"
    return InputError(
        "the weights do not follow the word-language-model layout StateLab reads "
        "(encoder.weight, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, "
        "rnn.bias_hh_l0, ..., decoder.weight, decoder.bias, as in the PyTorch "
        f"word_language_model example); the file has {found}"
    )


def _gate_blocks(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, int] | None:
    """(gate blocks, hidden size) read from ``rnn.weight_hh_l0``, or None."""
    hh = state_dict.get("rnn.weight_hh_l0")
    if hh is None or hh.ndim != 2 or hh.shape[1] == 0 or hh.shape[0] % hh.shape[1]:
        return None
    return int(hh.shape[0]) // int(hh.shape[1]), int(hh.shape[1])


def _tied(state_dict: Mapping[str, torch.Tensor]) -> bool:
    import torch

    enc = state_dict["encoder.weight"]
    dec = state_dict.get("decoder.weight")
    if dec is None:
        return True
    if dec.shape != enc.shape or dec.dtype != enc.dtype:
        return False
    return dec is enc or bool(torch.equal(dec, enc))


def recognise_spec(
    state_dict: Mapping[str, torch.Tensor], vocab_size: int, *, rnn_type_hint: str | None = None
) -> RNNSpec:
    """Read the architecture off a word-language-model state dict.

    ``rnn.weight_hh_l0`` is ``(G*H, H)`` with G = 4 (LSTM), 3 (GRU) or 1 (plain
    RNN); ``encoder.weight`` is ``(V, E)``; the layers are the consecutive
    ``rnn.weight_hh_l{k}``; the model is tied when ``decoder.weight`` is absent
    or equals ``encoder.weight``. A plain RNN needs ``rnn_type_hint``
    (``RNN_TANH`` or ``RNN_RELU``): its nonlinearity leaves no trace in the
    weights. ``vocab_size`` is taken as given; :func:`check_shapes` compares it
    with the encoder.
    """
    from workers.core.rnnlm import RNN_TYPES, RNNSpec

    enc = state_dict.get("encoder.weight")
    blocks = _gate_blocks(state_dict)
    if enc is None or enc.ndim != 2 or blocks is None:
        raise _layout_error(state_dict)
    g, hidden = blocks
    layers = 0
    while f"rnn.weight_hh_l{layers}" in state_dict:
        layers += 1
    hint = rnn_type_hint.strip().upper() if rnn_type_hint else None
    if hint is not None and hint not in RNN_TYPES:
        raise InputError(f"the rnn type must be one of {', '.join(RNN_TYPES)}, not {hint!r}")
    if g == 1:
        if hint not in ("RNN_TANH", "RNN_RELU"):
            raise InputError(
                "these are the weights of a plain RNN, whose nonlinearity (tanh or relu) "
                "cannot be seen in the weights: give the config "
                '{"rnn_type": "RNN_TANH"} or {"rnn_type": "RNN_RELU"}'
                + (f" (the given type {hint} has a different number of gates)" if hint else "")
            )
        rnn_type = hint
    elif g in _TYPE_BY_GATES:
        rnn_type = _TYPE_BY_GATES[g]
        if hint is not None and hint != rnn_type:
            raise InputError(
                f"the weights are those of a {rnn_type} ({g} gate blocks in "
                f"rnn.weight_hh_l0), but the rnn type given is {hint}"
            )
    else:
        raise InputError(
            f"rnn.weight_hh_l0 has {g} gate blocks of {hidden} rows; an LSTM has 4, "
            "a GRU 3 and a plain RNN 1"
        )
    return RNNSpec(
        rnn_type=rnn_type,
        vocab_size=vocab_size,
        embedding_size=int(enc.shape[1]),
        hidden_size=hidden,
        layers=layers,
        tied=_tied(state_dict),
    )


def check_shapes(spec: RNNSpec, state_dict: Mapping[str, torch.Tensor], vocab: list[str]) -> None:
    """Raise one ``InputError`` listing every way the weights disagree with ``spec``.

    Checked: the vocabulary length against the spec and the encoder's rows,
    missing and unexpected parameters, every shape, floating-point dtypes,
    finite values and, for a tied spec, that a present ``decoder.weight``
    equals ``encoder.weight``.
    """
    import torch

    problems: list[str] = []
    if len(vocab) != spec.vocab_size:
        problems.append(
            f"the vocabulary has {len(vocab)} tokens but the model is declared with "
            f"{spec.vocab_size}"
        )
    enc = state_dict.get("encoder.weight")
    if enc is not None and enc.ndim == 2 and enc.shape[0] != len(vocab):
        problems.append(
            f"encoder.weight has {enc.shape[0]} rows (one per token id) but the vocabulary "
            f"has {len(vocab)} tokens; upload the vocabulary the model was trained with"
        )
    blocks = _gate_blocks(state_dict)
    if blocks is not None and blocks[0] != _GATES[spec.rnn_type] and blocks[0] in (1, 3, 4):
        looks = {4: "an LSTM", 3: "a GRU", 1: "a plain RNN"}[blocks[0]]
        problems.append(f"the weights look like {looks} but the model is declared {spec.rnn_type}")
    expected = _expected_shapes(spec)
    optional = {"decoder.weight"} if spec.tied else set()
    missing = [k for k in expected if k not in state_dict and k not in optional]
    if missing:
        problems.append(f"missing {_some(missing)}")
    unexpected = sorted(k for k in state_dict if k not in expected)
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    wrong: list[str] = []
    not_float: list[str] = []
    not_finite: list[str] = []
    for name, shape in expected.items():
        t = state_dict.get(name)
        if t is None:
            continue
        if tuple(t.shape) != shape:
            wrong.append(f"{name} is {_shape(t)}, expected {shape}")
        elif not t.is_floating_point():
            not_float.append(f"{name} ({str(t.dtype).removeprefix('torch.')})")
        elif t.numel() and not bool(torch.isfinite(t).all()):
            not_finite.append(name)
    if wrong:
        problems.append(f"wrong shapes: {_some(wrong)}")
    if not_float:
        problems.append(f"weights must be floating point, but these are not: {_some(not_float)}")
    if not_finite:
        problems.append(f"these hold NaN or infinite values: {_some(not_finite)}")
    dec = state_dict.get("decoder.weight")
    if (
        spec.tied
        and dec is not None
        and enc is not None
        and dec.shape == enc.shape
        and not (dec is enc or bool(torch.equal(dec, enc)))
    ):
        problems.append("the model is declared tied but decoder.weight differs from encoder.weight")
    if problems:
        shape_words = (
            f"{spec.rnn_type}, {spec.layers} layer(s), embedding {spec.embedding_size}, "
            f"hidden {spec.hidden_size}, vocabulary {spec.vocab_size}"
            + (", tied" if spec.tied else "")
        )
        raise InputError(
            f"the weights do not match the model ({shape_words}): " + "; ".join(problems)
        )


def _normalise_names(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Undo two harmless ways a saved state dict differs from the model's names.

    ``nn.DataParallel`` puts ``module.`` before every name; and
    ``safetensors.torch.save_model`` keeps one name of a shared tensor, which
    for a tied model is ``decoder.weight`` (``encoder.weight`` is dropped).
    """
    notes: list[str] = []
    prefix = "module."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
        notes.append(f"the prefix {prefix!r} was removed from every parameter name")
    dec = state_dict.get("decoder.weight")
    if "encoder.weight" not in state_dict and dec is not None and "rnn.weight_hh_l0" in state_dict:
        state_dict = {"encoder.weight": dec, **state_dict}
        notes.append("encoder.weight is absent, so the model is read as tied to decoder.weight")
    return state_dict, notes


# --------------------------------------------------------------------------- #
# Storage
# --------------------------------------------------------------------------- #


def _to_store(spec: RNNSpec, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float32 CPU tensors that go into the file, each with its own memory."""
    import torch

    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name in _expected_shapes(spec):
        if spec.tied and name == "decoder.weight":
            continue
        t = state_dict[name].detach().to("cpu", torch.float32).contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen or t.untyped_storage().nbytes() != t.numel() * 4:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def save_model(
    final_dir: Path,
    spec: RNNSpec,
    state_dict: Mapping[str, torch.Tensor],
    vocab: list[str],
    meta: dict[str, Any],
) -> None:
    """Write a model directory atomically (see the module docstring for the layout).

    The weights are checked with :func:`check_shapes` first and stored as
    float32. ``final_dir`` must not exist; on any failure nothing appears there.
    """
    from safetensors.torch import save_file

    final_dir = Path(final_dir)
    if final_dir.exists() or final_dir.is_symlink():
        raise FileExistsError(f"{final_dir} already exists")
    if not all(isinstance(t, str) for t in vocab):
        raise ValueError("vocab entries must be strings")
    check_shapes(spec, state_dict, vocab)
    json.dumps(meta, allow_nan=False)  # fail before writing anything
    tensors = _to_store(spec, state_dict)
    parameters = sum(t.numel() for t in tensors.values())
    with atomic_dir(final_dir) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        write_json_synced(tmp / "spec.json", spec.to_json())
        write_json_synced(tmp / "vocab.json", list(vocab))
        write_json_synced(
            tmp / "manifest.json",
            {
                "format": MODEL_FORMAT,
                "version": MODEL_FORMAT_VERSION,
                "spec": spec.to_json(),
                "vocab_size": len(vocab),
                "parameters": parameters,
                "weights": WEIGHTS_NAME,
                "meta": meta,
            },
        )


def load_model(model_dir: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Open a stored model directory and build its module in eval mode on ``device``."""
    from safetensors.torch import load_file

    from workers.core.rnnlm import RNNLanguageModel, RNNSpec

    model_dir = Path(model_dir)
    manifest = read_manifest_json(model_dir)
    if manifest.get("format") != MODEL_FORMAT or manifest.get("version") != MODEL_FORMAT_VERSION:
        raise InputError(
            f"{model_dir.name} is not a StateLab model (format {manifest.get('format')!r}, "
            f"version {manifest.get('version')!r})"
        )
    try:
        spec = RNNSpec.from_json(json.loads((model_dir / "spec.json").read_text("utf-8")))
        vocab = json.loads((model_dir / "vocab.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"the model {model_dir.name} is damaged ({exc})") from None
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise InputError(f"the vocabulary of model {model_dir.name} is damaged")
    state = load_file(str(model_dir / WEIGHTS_NAME), device="cpu")
    if spec.tied:
        state["decoder.weight"] = state["encoder.weight"]
    check_shapes(spec, state, vocab)
    model = RNNLanguageModel(spec)
    model.load_state_dict(state, strict=True)
    model.to(device)
    model.eval()
    meta = manifest.get("meta") or {}
    return LoadedModel(model=model, spec=spec, vocab=vocab, meta=dict(meta))


_CONFIG_KEYS = ("rnn_type", "vocab_size", "embedding_size", "hidden_size", "layers", "tied")


def _spec_from_config(
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    vocab_size: int,
    rnn_type_hint: str | None,
) -> RNNSpec:
    """A spec from the user's config, with the keys it leaves out read off the weights."""
    from workers.core.rnnlm import RNNSpec

    unknown = sorted(str(k) for k in config if k not in _CONFIG_KEYS)
    if unknown:
        raise InputError(
            f"the model config has unknown keys {', '.join(unknown)}; it may have "
            f"{', '.join(_CONFIG_KEYS)}"
        )
    hint = config.get("rnn_type", rnn_type_hint)
    merged: dict[str, Any] = {"vocab_size": vocab_size}
    try:
        merged.update(
            recognise_spec(
                state_dict, vocab_size, rnn_type_hint=str(hint) if hint else None
            ).to_json()
        )
    except InputError as exc:
        # The config may still say everything; check_shapes then reports in full.
        if any(k not in config for k in _CONFIG_KEYS if k not in ("vocab_size", "tied")):
            raise exc from None
    merged.update(config)
    if "rnn_type" in config:
        merged["rnn_type"] = str(config["rnn_type"]).strip().upper()
    return RNNSpec.from_json(merged)


def model_upload(
    weights_path: Path,
    config: dict[str, Any] | None,
    vocab_bytes: bytes,
    vocab_filename: str,
    final_dir: Path,
    *,
    max_bytes: int,
    rnn_type_hint: str | None = None,
    weights_filename: str | None = None,
    meta: dict[str, Any] | None = None,
) -> ModelInfo:
    """Check an uploaded model completely, then store it at ``final_dir``.

    Order: the vocabulary, the weights (:func:`read_weights`), the architecture
    (from ``config`` where given -- keys it leaves out are read off the weights
    -- else :func:`recognise_spec`), :func:`check_shapes`, and only then
    :func:`save_model`. Any failure is an ``InputError`` and leaves nothing at
    ``final_dir``. ``weights_filename`` is the user's name for the file, used
    in messages only; ``meta`` is stored in the manifest.
    """
    vocab = read_vocab(vocab_bytes, vocab_filename)
    wname = weights_filename or "weights"
    try:
        state, source_format = _read_weights_with_format(Path(weights_path), max_bytes=max_bytes)
    except InputError as exc:
        raise InputError(exc.message, file=wname) from None
    state, notes = _normalise_names(state)
    try:
        if config is not None:
            if not isinstance(config, Mapping):
                raise InputError("the model config must be a JSON object")
            spec = _spec_from_config(config, state, len(vocab), rnn_type_hint)
        else:
            spec = recognise_spec(state, len(vocab), rnn_type_hint=rnn_type_hint)
            notes.append("the architecture was read from the weights")
        check_shapes(spec, state, vocab)
    except InputError as exc:
        raise InputError(exc.message, file=exc.file or wname) from None
    stored_meta = {
        "origin": "upload",
        "source_format": source_format,
        "notes": notes,
        **(meta or {}),
    }
    final_dir = Path(final_dir)
    save_model(final_dir, spec, state, vocab, stored_meta)
    manifest = read_manifest_json(final_dir)
    return ModelInfo(
        spec=spec,
        vocab_size=len(vocab),
        parameters=int(manifest["parameters"]),
        source_format=source_format,
        size_bytes=dir_size(final_dir),
        sha256=sha256_file(final_dir / WEIGHTS_NAME),
        notes=notes,
    )
