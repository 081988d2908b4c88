"""Permissions of the files ictcf writes through a temporary file and a rename.

``tempfile.mkstemp`` creates files with mode 0600 whatever the umask. Files renamed into place
get the mode a plain ``open()`` would give them instead, so exports and cached downloads are
readable by the group or everyone exactly when the user's umask allows it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

#: Mode of a new file before the umask is applied, as used by ``open()`` (octal 0666).
NEW_FILE_MODE = 0o666

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """Return the process umask (read by setting it and restoring it at once, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def apply_default_mode(path: Path) -> None:
    """Set ``path`` to mode 0666 minus the umask, as if it had been created by ``open()``."""
    path.chmod(NEW_FILE_MODE & ~current_umask())
