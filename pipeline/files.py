"""The pipeline's own files, written atomically (an interrupted run leaves no half-written one) and read back."""
import contextlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

UMASK = os.umask(0o022)  # reading the umask means setting it: put it straight back
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp's 0600 would make results unreadable to others
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path, frame):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_table(path, text_columns=()):
    """A CSV the pipeline wrote. Labels stay text: a class folder named NA, None or null is a class, not a gap."""
    return pd.read_csv(path, dtype={column: str for column in text_columns}, keep_default_na=False, na_values=[""])
