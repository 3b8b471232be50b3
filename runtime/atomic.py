"""Write a file so that readers see either the old one or the complete new one.

The data goes to a temporary file in the destination's directory (so the
final rename cannot cross file systems), is flushed to disk, and is renamed
over the destination. Any failure, including KeyboardInterrupt, removes the
temporary file and leaves an existing destination untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output_path"]


def _new_file_mode(target: Path) -> int:
    try:
        return os.stat(target).st_mode & 0o7777  # replacing: keep its permissions
    except FileNotFoundError:
        pass
    # A new file gets what open() would give it: 0o666 less the umask. The
    # umask can only be read by setting it, so set it straight back.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # some file systems cannot open directories: best effort
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``.

    The caller must have closed the temporary file when the block ends.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target}: is a directory")
    directory = target.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_path(tmp)
        os.chmod(tmp, _new_file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_path(directory, directory=True)
