"""Environment variables set for a block (standard library only: the
install tests import it without the package under test)."""

import contextlib
import os


@contextlib.contextmanager
def env(**kw):
    """Environment variables set (a None value: unset) for the block."""
    saved = {k: os.environ.get(k) for k in kw}
    try:
        for k, v in kw.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
