"""The sandbox every tool process runs in: bubblewrap namespaces, a read-only system, rlimits, no network.

Why: a run's tools execute commands a model chose, and a prompt can make a model choose anything; the
process that runs them holds byollm's secrets (the key-encryption key, the database, provider keys). So each
tool invocation is a ``bwrap`` sandbox (the same isolation Claude Code and Codex use on Linux) with:

- new user, PID, IPC, UTS, cgroup and network namespaces (``--unshare-all --unshare-user``), no nested user
  namespaces (``--disable-userns``), ``--die-with-parent``, its own session (``--new-session``, so it cannot
  push input into a terminal);
- a filesystem of read-only system directories (``/usr`` and the ``/bin``, ``/lib*`` links or directories,
  the few ``/etc`` files a shell and TLS need), a fresh ``/proc`` of its own PID namespace (nothing of the
  host's processes: no ``/proc/<byollm pid>/environ``), a minimal ``/dev``, a private size-limited tmpfs
  ``/tmp``, and the run's working directory bound read-write at ``/workspace``: the only writable place and
  the only thing of the host's data. No data directory, no home, no byollm source or virtualenv;
- a cleared environment (``PATH``, ``HOME=/workspace``, ``LANG``, ``TMPDIR``; the proxy variables when
  egress is on);
- rlimits applied inside the sandbox by ``prlimit`` before the command runs, so they bind there: CPU
  seconds, address space, process count (``RLIMIT_NPROC`` counts the processes of the sandbox's own user
  namespace) and file size; the hard limits equal the soft ones, so the tool cannot raise them. The tool's
  wall-clock and output limits stay in ``runs.tools``;
- when byollm runs as root, the sandbox is started as an unprivileged user (``BYOLLM_RUN_SANDBOX_UID``, via
  util-linux's ``setpriv``):
  the kernel never applies ``RLIMIT_NPROC`` to root, and an escape should not land as root. The working
  directory is then owned by that user, and the runs root is 0711 (enter, not list) so it can reach it.

No network: the network namespace holds only its own loopback. When the operator lists egress hosts, the
invocation gets an ``EgressProxy`` (``runs.egress``) on a unix socket bound into the sandbox, and the
command is started by the in-sandbox relay (``runs.egress_relay``, run by the system Python under ``/usr``)
that exposes it as ``HTTP_PROXY``/``HTTPS_PROXY`` on the sandbox's loopback.

If any of this cannot be set up (no ``bwrap`` at the configured path, user namespaces refused, no
``prlimit``, egress wanted but no system Python for the relay), ``Sandbox.launch`` raises
``sandbox_unavailable`` before any process starts; there is no unconfined fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from byollm.errors import ByollmError, ErrorClass
from byollm.netguard import EgressGuard
from byollm.runs.egress import AllowList, EgressProxy

__all__ = ["SANDBOX_WORKDIR", "Sandbox", "SandboxConfig", "SandboxLimits", "prepare_runs_root"]

log = logging.getLogger(__name__)

SANDBOX_WORKDIR = "/workspace"
_EGRESS_SOCKET = "/run/byollm/egress.sock"
_PROXY_PORT = 3128
_SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_PATHS = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/ssl",
              "/etc/ca-certificates", "/etc/localtime", "/etc/nsswitch.conf")
_PATH = "/usr/local/bin:/usr/bin:/bin"
# bwrap's own environment: its PID 1 inside the sandbox keeps it in /proc/1/environ, so never byollm's
_BWRAP_ENV = {"PATH": _PATH, "LANG": "C.UTF-8"}
_RELAY_SOURCE = (Path(__file__).parent / "egress_relay.py").read_text()


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    cpu_s: int
    memory_bytes: int
    processes: int
    file_bytes: int
    workdir_bytes: int = 1 << 30  # the working directory's quota (``runs.tools`` enforces it)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    bwrap: str  # a path, or a name looked up on PATH; empty means "bwrap"
    limits: SandboxLimits
    sandbox_uid: int = 65534
    egress: AllowList = field(default_factory=lambda: AllowList(frozenset()))
    guard: EgressGuard | None = None
    own_addresses: tuple[tuple[str, int], ...] = ()


def _unavailable(detail: str) -> ByollmError:
    return ByollmError(ErrorClass.SANDBOX_UNAVAILABLE, f"the tool sandbox cannot be set up: {detail}")


def _inside_system(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in _SYSTEM_PATHS)


def _as_root() -> bool:
    return os.geteuid() == 0


def _not_enterable(directory: Path, uid: int) -> Path | None:
    """The first directory on the way to ``directory`` (itself included) that ``uid`` (with the same gid)
    may not enter, judged by the mode bits; None when every one may be entered."""
    path = directory.resolve(strict=False)
    for step in [*reversed(path.parents), path]:
        try:
            st = step.stat()
        except FileNotFoundError:
            return None  # created below by byollm, as its owner decides
        mode = st.st_mode
        if not (mode & 0o001 or (st.st_uid == uid and mode & 0o100) or (st.st_gid == uid and mode & 0o010)):
            return step
    return None


def prepare_runs_root(root: Path) -> None:
    """Create the runs root private to byollm: 0700, or 0711 when byollm is root (the sandbox user must
    enter it to reach its own working directory, but cannot list it)."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o711 if _as_root() else 0o700)


class Sandbox:
    """Builds and starts sandboxed commands; one per process (its probe result is remembered)."""

    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._probed: str | None = None  # the bwrap path that passed the probe

    @property
    def config(self) -> SandboxConfig:
        return self._config

    def _bwrap(self) -> str:
        name = self._config.bwrap or "bwrap"
        found = shutil.which(name)
        if found is None:
            raise _unavailable(f"bubblewrap was not found at {name!r}")
        return found

    @staticmethod
    def _tool(name: str) -> str:
        found = shutil.which(name, path=_PATH)
        if found is None or not _inside_system(os.path.realpath(found)):
            raise _unavailable(f"{name} was not found in the system directories the sandbox mounts")
        return found

    def _python(self) -> str:
        for candidate in (os.path.realpath(sys.executable), "/usr/bin/python3", "/usr/local/bin/python3"):
            if os.path.exists(candidate) and _inside_system(os.path.realpath(candidate)):
                return candidate
        raise _unavailable("egress needs a Python 3 under /usr for the in-sandbox relay, and none was found")

    def _drop(self) -> list[str]:
        """The prefix that starts bwrap as the sandbox user when byollm is root (``setpriv`` from util-linux:
        the event loop's subprocess API cannot switch users on every loop, uvloop's included)."""
        if not _as_root():
            return []
        uid = self._config.sandbox_uid
        return [self._tool("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]

    def _base_args(self, bwrap: str) -> list[str]:
        args = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
                "--hostname", "sandbox"]
        for path in _SYSTEM_PATHS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for path in _ETC_PATHS:
            args += ["--ro-bind-try", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(self._config.limits.file_bytes),
                 "--tmpfs", "/tmp",  # noqa: S108 - the sandbox's own private tmpfs
                 "--clearenv", "--setenv", "PATH", _PATH, "--setenv", "LANG", "C.UTF-8",
                 "--setenv", "TMPDIR", "/tmp"]  # noqa: S108
        return args

    def _limits(self) -> list[str]:
        lim = self._config.limits
        return [self._tool("prlimit"), f"--cpu={lim.cpu_s}:{lim.cpu_s + 1}",
                f"--as={lim.memory_bytes}:{lim.memory_bytes}", f"--nproc={lim.processes}:{lim.processes}",
                f"--fsize={lim.file_bytes}:{lim.file_bytes}", "--"]

    async def _probe(self, bwrap: str) -> None:
        """Start one empty sandbox (the same namespaces and mounts) to learn whether this host allows it."""
        if self._probed == bwrap:
            return
        args = [*self._drop(), *self._base_args(bwrap), "--", *self._limits(), "/bin/true"]
        try:
            process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, env=_BWRAP_ENV)
            _, err = await asyncio.wait_for(process.communicate(), 30)
        except (OSError, TimeoutError) as exc:
            raise _unavailable(f"bubblewrap could not be started ({type(exc).__name__})") from None
        if process.returncode != 0:
            first = err.decode("utf-8", "replace").strip().splitlines()[:1]
            raise _unavailable(f"bubblewrap refused to create the sandbox ({first[0][:300] if first else 'no reason'})")
        self._probed = bwrap

    async def check(self, runs_root: Path | None = None) -> None:
        """Raise ``sandbox_unavailable`` now if a tool call would (for the start-up warning): the runs root
        included, which as root the sandbox user must be able to reach (the default ``<data dir>-runs``
        under ``/root`` is not)."""
        if runs_root is not None:
            self._check_reachable(runs_root)
        bwrap = self._bwrap()
        self._limits()
        self._drop()
        if self._config.egress:
            self._python()
        await self._probe(bwrap)

    def prepare_workdir(self, workdir: Path) -> None:
        """Create the working directory (0700); as root, owned by the sandbox user, who must be able to
        enter every directory above it (bubblewrap resolves the path as that user)."""
        prepare_runs_root(workdir.parent)
        self._check_reachable(workdir.parent)
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _as_root():
            os.chown(workdir, self._config.sandbox_uid, self._config.sandbox_uid)

    def _check_reachable(self, runs_root: Path) -> None:
        if not _as_root():
            return
        uid = self._config.sandbox_uid
        blocked = _not_enterable(runs_root, uid)
        if blocked is not None:
            raise _unavailable(f"the sandbox user (uid {uid}) cannot enter {blocked}, on the way to the runs"
                               " directory; set BYOLLM_RUN_WORKDIR to a directory whose parents others may enter"
                               " (for example /var/lib/byollm-runs)")

    @contextlib.asynccontextmanager
    async def launch(self, command: Sequence[str], workdir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
        """Start ``command`` in a sandbox around ``workdir`` (stdout and stderr merged into one pipe); on
        exit, the sandbox and its egress proxy are gone. Raises ``sandbox_unavailable`` before starting
        anything when the sandbox cannot be had."""
        bwrap = self._bwrap()
        limits = self._limits()
        relay = self._python() if self._config.egress else None
        await self._probe(bwrap)
        self.prepare_workdir(workdir)
        args = [*self._base_args(bwrap), "--bind", str(workdir), SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR,
                "--setenv", "HOME", SANDBOX_WORKDIR]
        proxy: EgressProxy | None = None
        socket_dir: str | None = None
        try:
            inner = list(command)
            if relay is not None:
                socket_dir = tempfile.mkdtemp(prefix="byollm-egress-")
                socket_path = Path(socket_dir) / "egress.sock"
                proxy = EgressProxy(self._config.egress, self._config.guard or EgressGuard(),
                                    own=self._config.own_addresses)
                await proxy.start(socket_path)
                if _as_root():
                    uid = self._config.sandbox_uid
                    os.chown(socket_dir, uid, uid)
                    os.chown(socket_path, uid, uid)
                socket_path.chmod(0o600)
                url = f"http://127.0.0.1:{_PROXY_PORT}"
                args += ["--ro-bind", str(socket_path), _EGRESS_SOCKET]
                for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                    args += ["--setenv", name, url]
                inner = [relay, "-I", "-S", "-c", _RELAY_SOURCE, _EGRESS_SOCKET, str(_PROXY_PORT), *inner]
            process = await asyncio.create_subprocess_exec(
                *self._drop(), *args, "--", *limits, *inner, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                env=_BWRAP_ENV)
            try:
                yield process
            finally:
                if process.returncode is None:
                    kill_group(process.pid)
                with contextlib.suppress(Exception):
                    await asyncio.shield(process.wait())
        finally:
            if proxy is not None:
                await proxy.close()
            if socket_dir is not None:
                shutil.rmtree(socket_dir, ignore_errors=True)


def kill_group(pid: int) -> None:
    """Kill bwrap's process group; the sandbox's PID 1 dies with it (``--die-with-parent``) and takes every
    process of the sandbox's PID namespace along."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
