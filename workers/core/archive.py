"""Unpacking a user's zip of an LSTMVis project directory, defensively.

Users move their LSTMVis data in as one zip. A zip is attacker-controlled
structure: entry names can climb out of the target (``../``, absolute paths,
drive letters, backslashes that only Windows treats as separators), entries can
be symlinks that later writes follow, and a few kilobytes can declare gigabytes
(a zip bomb). So everything is checked from the central directory *before* a
byte is written, and the copy loop counts the bytes it really writes, because
declared sizes can lie. Entries are written with exclusive create into fresh
directories, never following an existing path, and nothing keeps the archive's
permission bits.

On any refusal the destination is left empty (or absent), and the caller gets an
``InputError`` that says what was wrong in the user's terms.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from workers.core.errors import InputError

__all__ = ["extract_zip_safely", "find_project_dir"]

PROJECT_FILE = "lstm.yml"
_IGNORED_TOP = "__MACOSX"
_CHUNK = 1 << 20
# Below this size an entry cannot be a bomb that matters (the total cap holds
# anyway), and small files of zeros legitimately compress very well.
_RATIO_MIN_BYTES = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _member_parts(info: zipfile.ZipInfo, display: str) -> tuple[str, ...]:
    """The path components of an entry, or ``InputError`` if the name is unsafe."""
    name = info.filename
    reason = None
    if not name:
        reason = "has an entry without a name"
    elif "\\" in name:
        reason = f"has an entry name with a backslash ({name!r})"
    elif _CONTROL.search(name):
        reason = f"has an entry name with control characters ({name!r})"
    elif name.startswith("/"):
        reason = f"has an entry with an absolute path ({name!r})"
    elif _DRIVE.match(name):
        reason = f"has an entry with a drive letter ({name!r})"
    if reason is None:
        parts = name.rstrip("/").split("/")
        if any(p == ".." for p in parts):
            reason = f"has an entry that points outside the archive ({name!r})"
        elif any(p in ("", ".") for p in parts):
            reason = f"has an entry with an empty or '.' path component ({name!r})"
        else:
            return tuple(parts)
    raise InputError(f"the archive {reason}; it was not unpacked", file=display)


def _check_entry_type(info: zipfile.ZipInfo, display: str) -> None:
    if info.flag_bits & 0x1:
        raise InputError(
            f"the archive entry {info.filename!r} is encrypted; upload an unencrypted zip",
            file=display,
        )
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise InputError(
            f"the archive entry {info.filename!r} is a symbolic link; links are not accepted",
            file=display,
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InputError(
            f"the archive entry {info.filename!r} is not a regular file or folder", file=display
        )


def _plan(
    zf: zipfile.ZipFile,
    display: str,
    *,
    max_entries: int,
    max_total_bytes: int,
    max_ratio: float,
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    infos = zf.infolist()
    if len(infos) > max_entries:
        raise InputError(
            f"the archive has {len(infos)} entries, more than the {max_entries} allowed",
            file=display,
        )
    seen: set[tuple[str, ...]] = set()
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    total = 0
    total_compressed = 0
    for info in infos:
        parts = _member_parts(info, display)
        _check_entry_type(info, display)
        if parts in seen:
            raise InputError(
                f"the archive holds {'/'.join(parts)!r} more than once; it was not unpacked",
                file=display,
            )
        seen.add(parts)
        if parts[0] == _IGNORED_TOP:
            continue
        total += info.file_size
        total_compressed += info.compress_size
        if total > max_total_bytes:
            raise InputError(
                f"the archive unpacks to more than {max_total_bytes} bytes, over the limit",
                file=display,
            )
        if info.file_size > _RATIO_MIN_BYTES and info.file_size > max_ratio * max(
            info.compress_size, 1
        ):
            raise InputError(
                f"the archive entry {info.filename!r} is compressed more than {max_ratio:g} "
                "times; such archives are refused as possible zip bombs",
                file=display,
            )
        plan.append((info, parts))
    if total > _RATIO_MIN_BYTES and total > max_ratio * max(total_compressed, 1):
        raise InputError(
            f"the archive is compressed more than {max_ratio:g} times; such archives are "
            "refused as possible zip bombs",
            file=display,
        )
    return plan


def _copy_member(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    display: str,
    budget: int,
) -> int:
    """Copy one entry, stopping once it exceeds its declared size or ``budget``."""
    written = 0
    limit = min(info.file_size, budget)
    with zf.open(info) as src, open(target, "xb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                raise InputError(
                    f"the archive entry {info.filename!r} unpacks to more bytes than it "
                    "declares or than the limit allows; it was not unpacked",
                    file=display,
                )
            out.write(chunk)
    return written


def _empty_dir(dest: Path, created: bool) -> None:
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def find_project_dir(root: Path, *, display_name: str | None = None) -> Path:
    """The folder holding ``lstm.yml``: ``root`` itself or its only top-level folder with one."""
    if (root / PROJECT_FILE).is_file():
        return root
    found = sorted(
        child
        for child in root.iterdir()
        if child.is_dir()
        and not child.is_symlink()
        and child.name != _IGNORED_TOP
        and (child / PROJECT_FILE).is_file()
    )
    if not found:
        raise InputError(
            f"the archive has no {PROJECT_FILE}, neither at its top level nor in a top-level "
            "folder; it does not look like an LSTMVis project",
            file=display_name,
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(
            f"the archive holds several projects ({names}); upload one project per archive",
            file=display_name,
        )
    return found[0]


def extract_zip_safely(
    zip_path: Path,
    dest: Path,
    *,
    max_entries: int = 10_000,
    max_total_bytes: int,
    max_ratio: float = 200.0,
    display_name: str | None = None,
) -> Path:
    """Unpack ``zip_path`` into ``dest`` (absent or empty) and return the project folder.

    See the module doc for what is refused. ``display_name`` is the user's name for
    the archive, used in messages (default: the file's own name). On failure
    ``dest`` is left empty or removed and ``InputError`` is raised.
    """
    display = display_name or Path(zip_path).name
    dest = Path(dest)
    created = not dest.exists()
    if created:
        dest.mkdir(parents=True)
    elif not dest.is_dir() or any(dest.iterdir()):
        raise FileExistsError(f"{dest} must be an empty directory")
    try:
        try:
            with zipfile.ZipFile(zip_path) as zf:
                plan = _plan(
                    zf,
                    display,
                    max_entries=max_entries,
                    max_total_bytes=max_total_bytes,
                    max_ratio=max_ratio,
                )
                budget = max_total_bytes
                root = dest.resolve()
                for info, parts in plan:
                    target = dest.joinpath(*parts)
                    # The names were checked already; this keeps the invariant explicit.
                    if not target.resolve().is_relative_to(root):
                        raise InputError(
                            f"the archive entry {info.filename!r} points outside the archive",
                            file=display,
                        )
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    budget -= _copy_member(zf, info, target, display, budget)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise InputError(
                f"the file is not a readable zip archive ({exc})", file=display
            ) from None
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise InputError(
                f"the archive has entries that clash with each other ({exc.filename and Path(exc.filename).name})",
                file=display,
            ) from None
        return find_project_dir(dest, display_name=display)
    except BaseException:
        _empty_dir(dest, created)
        raise
