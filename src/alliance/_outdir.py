"""Writing a report folder without ever losing a file.

A report is built in a staging folder beside ``--out`` and swapped into place only when it
is complete. The rules (the README's "Data safety" section):

* ``--out`` is a new or empty folder, or a folder holding a previous report of ours: every
  file in it is listed in its manifest (``.alliance-report.json``), or, for a report made
  before manifests, has the shape of a report (``index.html``, ``provenance.json``, pages,
  ``notebooks/``, ``figures/``, ``tables/``). Anything else is refused and nothing is touched.
* ``--out`` may not be the data folder, lie inside it, or contain it.
* One run at a time per ``--out``: a lock file beside it (``.NAME.alliance-lock``, held with
  ``flock`` and naming the process) keeps a second run out. Only the run holding the lock
  cleans up what a killed run left (``.NAME.alliance-new``, ``.NAME.alliance-old``).
* The swap renames the old report to ``.NAME.alliance-old``, the staging folder to ``--out``,
  then removes the files the old manifest lists. After SIGKILL at any point the next run
  finds either the complete old or the complete new report and restores or finishes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

MANIFEST = ".alliance-report.json"
STAGING_MARK = ".alliance-staging"
_LEGACY = (
    re.compile(r"index\.html|provenance\.json|[0-9][0-9]_[^/]+\.html"),
    re.compile(r"notebooks/[0-9][0-9]_[^/]+\.ipynb"),
    re.compile(r"figures/[^/]+\.(png|svg)"),
    re.compile(r"tables/[^/]+\.csv"),
    re.compile(r"screenshots/[^/]+\.png"),
)
_LEGACY_DIRS = {"notebooks", "figures", "tables", "screenshots"}

try:  # POSIX: the lock is released by the kernel when its holder dies, even by SIGKILL
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class OutputRefused(ValueError):
    """``--out`` cannot be written without risking a file that is not ours (exit code 2)."""


def checkpoint(step: str) -> None:
    """Test hook: stop (SIGKILL) or pause at a named step of writing a report.

    ``ALLIANCE_TEST_KILL_AT=step`` kills the process there; ``ALLIANCE_TEST_PAUSE_AT=step``
    writes the process id to ``ALLIANCE_TEST_PAUSE_FILE`` and waits until that file is
    removed (at most two minutes). Unset, this does nothing.
    """
    if os.environ.get("ALLIANCE_TEST_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("ALLIANCE_TEST_PAUSE_AT") == step:
        flag = Path(os.environ["ALLIANCE_TEST_PAUSE_FILE"])
        flag.write_text(str(os.getpid()), encoding="utf-8")
        deadline = time.monotonic() + 120
        while flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """Relative paths (POSIX) of every file and every folder under ``folder``."""
    files, dirs = [], []
    for root, subdirs, names in os.walk(folder, followlinks=False):
        rel = Path(root).relative_to(folder)
        for d in list(subdirs):
            if (Path(root) / d).is_symlink():  # a link to a folder counts as a file
                subdirs.remove(d)
                names.append(d)
            else:
                dirs.append((rel / d).as_posix())
        files += [(rel / n).as_posix() for n in names]
    return sorted(files), sorted(dirs)


def _safe_entry(entry: object) -> bool:
    if not isinstance(entry, str) or not entry or entry.startswith(("/", "\\")):
        return False
    parts = entry.replace("\\", "/").split("/")
    return ".." not in parts and "" not in parts and ":" not in parts[0]


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a report folder, or None when there is none (or it is not ours)."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("written_by") != "alliance report":
        return None
    files, dirs = manifest.get("files"), manifest.get("dirs", [])
    if not isinstance(files, list) or not isinstance(dirs, list):
        return None
    if not all(_safe_entry(e) for e in files + dirs):
        return None
    return manifest


def write_manifest(folder: Path, version: str) -> dict:
    """List every file and folder of ``folder`` in its manifest (written atomically)."""
    files, dirs = _walk(folder)
    files = [f for f in files if f not in (MANIFEST, STAGING_MARK)]
    manifest = {"written_by": "alliance report", "version": version, "files": files, "dirs": dirs}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    return manifest


def _legacy_manifest(folder: Path) -> tuple[dict | None, list[str]]:
    """A manifest for a report written before manifests existed, and what does not fit."""
    if not ((folder / "index.html").is_file() and (folder / "provenance.json").is_file()):
        return None, []
    files, dirs = _walk(folder)
    strangers = [f for f in files if not any(p.fullmatch(f) for p in _LEGACY)]
    strangers += [d for d in dirs if d not in _LEGACY_DIRS]
    manifest = {"written_by": "alliance report", "version": "unknown", "files": files, "dirs": dirs}
    return manifest, strangers


def _describe(found: list[str]) -> str:
    shown = ", ".join(found[:5])
    return shown + (f" and {len(found) - 5} more" if len(found) > 5 else "")


def existing_report(out: Path) -> dict | None:
    """What ``out`` holds: None (new or empty folder) or the previous report's manifest.

    Raises OutputRefused when ``out`` holds anything a report of ours did not write.
    """
    if not out.exists() and not out.is_symlink():
        return None
    if not out.is_dir():
        raise OutputRefused(
            f"--out {out} is a file, not a folder. Nothing was changed. Give a new folder "
            "for the report (for example reports/<name>)."
        )
    files, dirs = _walk(out)
    if not files and not dirs:
        return None
    manifest = read_manifest(out)
    if manifest is not None:
        listed = set(manifest["files"]) | {MANIFEST}
        strangers = [f for f in files if f not in listed]
        strangers += [d for d in dirs if d not in set(manifest["dirs"])]
        kind = "its manifest (" + MANIFEST + ") does not list"
    else:
        manifest, strangers = _legacy_manifest(out)
        kind = "a report does not write"
        if manifest is None:
            raise OutputRefused(
                f"--out {out} is not empty and holds no alliance report (found "
                f"{_describe(files or dirs)}). Nothing was changed. Give a new or empty "
                "folder, for example --out reports/<name>; a report only ever replaces a "
                "previous report."
            )
    if strangers:
        raise OutputRefused(
            f"--out {out} holds a previous report and also files that {kind}: "
            f"{_describe(strangers)}. Nothing was changed. Move those files out of {out}, "
            "or give another --out folder."
        )
    return manifest


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_not_data(out: Path, folders: list[Path], files: list[Path]) -> None:
    """Refuse an ``out`` that is, lies in or contains a data folder or an input file's folder.

    ``out``, ``folders`` and ``files`` are resolved paths.
    """
    for folder in folders:
        if _inside(out, folder) or _inside(folder, out):
            where = (
                "is" if out == folder else ("lies inside" if _inside(out, folder) else "contains")
            )
            raise OutputRefused(
                f"--out {out} {where} the data folder {folder}. Nothing was changed. Write "
                "the report elsewhere (for example --out reports/<name>): input files are "
                "only ever read."
            )
    for file in files:
        if _inside(file.parent, out):
            raise OutputRefused(
                f"--out {out} holds the input file {file}. Nothing was changed. Write the "
                "report to a folder of its own (for example --out reports/<name>)."
            )


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - e.g. Windows
        return True
    return True


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text(encoding="utf-8").strip() or 0)
    except (OSError, ValueError):
        return 0


class ReportFolder:
    """Build a report in staging and swap it into ``out``; a context manager.

    ``with ReportFolder(out) as folder:`` takes the lock, finishes or undoes what a killed
    run left, checks ``out`` and creates the empty staging folder ``folder.staging``.
    ``folder.commit(version)`` writes the manifest and swaps the report into place.
    Leaving the block by an error removes the staging folder; the lock is always released.
    """

    def __init__(self, out: Path, *, folders=(), files=()):
        self.out = Path(os.path.abspath(out))
        self.out = self.out.parent.resolve() / self.out.name
        if self.out.is_symlink():
            self.out = self.out.resolve()
        parent, name = self.out.parent, self.out.name
        self.lock = parent / f".{name}.alliance-lock"
        self.staging = parent / f".{name}.alliance-new"
        self.backup = parent / f".{name}.alliance-old"
        self._folders = [Path(p).resolve() for p in folders]
        self._files = [Path(p).resolve() for p in files]
        self._fd: int | None = None
        self.previous: dict | None = None

    # -- the lock -------------------------------------------------------------------
    def _busy(self) -> OutputRefused:
        pid = _read_pid(self.lock)
        who = f"process {pid}" if pid else "another process"
        return OutputRefused(
            f"another alliance report run ({who}) is writing {self.out}. Nothing was "
            "changed. Wait until it finishes, or give another --out folder."
        )

    def _acquire(self) -> None:
        for _ in range(50):
            if fcntl is None:  # pragma: no cover - Windows: a PID file
                try:
                    fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    if _pid_alive(_read_pid(self.lock)):
                        raise self._busy() from None
                    self.lock.unlink(missing_ok=True)
                    continue
            else:
                fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise self._busy() from None
                try:
                    same = os.stat(self.lock).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # the holder removed the file as we opened it: try again
                    os.close(fd)
                    continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return
        raise self._busy()  # pragma: no cover

    def _release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.lock.unlink()
            os.close(self._fd)
            self._fd = None

    # -- what a killed run left ----------------------------------------------------------
    def _ours(self, folder: Path) -> bool:
        return (folder / STAGING_MARK).is_file() or read_manifest(folder) is not None

    def _recover(self) -> None:
        if self.backup.exists():
            if read_manifest(self.backup) is not None and not self.out.exists():
                os.rename(self.backup, self.out)  # killed between the two renames: undo
            else:
                self._remove_listed(self.backup)
        if self.staging.exists():
            if self._ours(self.staging) or not any(self.staging.iterdir()):
                shutil.rmtree(self.staging)
            else:
                raise OutputRefused(
                    f"{self.staging} exists and was not made by alliance. Nothing was "
                    "changed. Move it away, or give another --out folder."
                )

    def _remove_listed(self, folder: Path) -> None:
        """Remove what the manifest of ``folder`` lists, then the folder if it is empty."""
        manifest = read_manifest(folder)
        if manifest is not None:
            for i, entry in enumerate(manifest["files"]):
                (folder / entry).unlink(missing_ok=True)
                if i == 0:
                    checkpoint("removing-old")
            for entry in sorted(manifest["dirs"], key=lambda d: d.count("/"), reverse=True):
                with contextlib.suppress(OSError):
                    (folder / entry).rmdir()
            (folder / MANIFEST).unlink(missing_ok=True)
        left, _ = _walk(folder)
        if left:
            raise OutputRefused(
                f"{folder} holds files that no alliance report wrote ({_describe(left)}); "
                "they were kept. Move them elsewhere and run the report again."
            )
        # only empty folders are left: remove them one by one, deepest first, so a file
        # that appeared since the walk stops the removal instead of being deleted with it
        empty = sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
        try:
            for sub in reversed(empty):
                sub.rmdir()
            folder.rmdir()
        except OSError as error:
            raise OutputRefused(
                f"{folder} could not be removed ({error.strerror}); what it holds was kept. "
                "Move it away and run the report again."
            ) from None

    # -- the context manager -------------------------------------------------------------
    def __enter__(self) -> ReportFolder:
        check_not_data(self.out, self._folders, self._files)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            checkpoint("locked")
            self._recover()
            self.previous = existing_report(self.out)
            os.mkdir(self.staging, 0o700)
            (self.staging / STAGING_MARK).write_text(str(os.getpid()), encoding="utf-8")
            checkpoint("staged")
        except BaseException:
            self._cleanup()
            raise
        return self

    def _cleanup(self) -> None:
        try:
            if self.staging.exists() and self._ours(self.staging):
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._release()

    def __exit__(self, *exc) -> None:
        self._cleanup()

    def commit(self, version: str) -> dict:
        """Write the manifest and put the staged report in place of ``out``."""
        manifest = write_manifest(self.staging, version)
        (self.staging / STAGING_MARK).unlink()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(self.staging, 0o777 & ~mask)
        checkpoint("built")
        previous = existing_report(self.out)  # again: a file may have appeared meanwhile
        if previous is not None:
            if read_manifest(self.out) is None:  # an older report: give it its manifest
                (self.out / MANIFEST).write_text(json.dumps(previous) + "\n", encoding="utf-8")
            os.rename(self.out, self.backup)
            checkpoint("moved-old")
            try:
                os.rename(self.staging, self.out)
            except OSError:
                os.rename(self.backup, self.out)  # put the old report back
                raise
            checkpoint("moved-new")
            self._remove_listed(self.backup)
        else:
            if self.out.is_dir():
                self.out.rmdir()  # an empty folder
            os.rename(self.staging, self.out)
        checkpoint("done")
        return manifest
