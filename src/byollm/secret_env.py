"""Forget secrets the operator passed in the environment, once they have been read.

Why more than ``del os.environ[...]``: Linux serves ``/proc/<pid>/environ`` from the environment block the
process was started with, and ``unsetenv`` only drops the pointer to it; the bytes stay readable by anything
that may read the process's ``/proc`` entry (a debugger, a crash dump, a same-user process). So the value is
overwritten in place first, then unset. Operators should still prefer ``BYOLLM_KEK_FILE`` (a secret mount):
a variable can be seen by whatever started the process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Iterable, MutableMapping

__all__ = ["SECRET_VARIABLES", "forget_secret_variables"]

log = logging.getLogger(__name__)

SECRET_VARIABLES = ("BYOLLM_KEK", "BYOLLM_KEK_PREVIOUS")


def _wipe_in_place(names: Iterable[str]) -> int:
    """Zero the values of ``names`` in the C environment block; how many entries were wiped."""
    if not sys.platform.startswith("linux"):
        return 0
    prefixes = tuple(f"{name}=".encode() for name in names)
    libc = ctypes.CDLL(None)
    environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    wiped = 0
    index = 0
    while environ[index]:
        address = environ[index]
        assert address is not None
        entry = ctypes.string_at(address)
        for prefix in prefixes:
            if entry.startswith(prefix) and len(entry) > len(prefix):
                ctypes.memset(address + len(prefix), 0, len(entry) - len(prefix))
                wiped += 1
        index += 1
    return wiped


def forget_secret_variables(env: MutableMapping[str, str] | None = None,
                            names: Iterable[str] = SECRET_VARIABLES) -> int:
    """Remove ``names`` from the process environment (and its original block); how many were present."""
    target = os.environ if env is None else env
    names = tuple(names)
    present = [name for name in names if name in target]
    if target is os.environ and present:
        try:
            _wipe_in_place(present)
        except (OSError, AttributeError, ValueError) as exc:  # no libc symbol: still unset below
            log.warning("could not overwrite the environment block in place (%s)", type(exc).__name__)
    for name in present:
        target.pop(name, None)
    return len(present)
