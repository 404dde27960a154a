"""Writing files so that a reader never sees half of one: write a temporary file beside the target,
flush it to disk, rename it into place (the library's own files are written the same way)."""
from __future__ import annotations

import os
from typing import Callable


def write_atomically(path: str, write: Callable[[str], None]) -> None:
    """`write(tmp)` writes the content to the temporary path; it then replaces `path` in one step."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomically(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    write_atomically(path, write)
