"""OCI hooks: run each with the container's state JSON on stdin.

A hook that fails (non-zero exit, a signal, a timeout, no such file) fails
the step it belongs to -- except poststart and poststop, whose failures the
spec says are only logged.  Each hook gets exactly the env it lists.
"""

from __future__ import annotations

import os
import subprocess

from nsbox.errors import NsboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.oci.spec import Hook


class HookError(NsboxError):
    pass


def run_hooks(hooks: list[Hook], phase: str, state_json: bytes) -> None:
    for i, hook in enumerate(hooks):
        run_hook(hook, f"hooks.{phase}[{i}]", state_json)


def run_hooks_warning(hooks: list[Hook], phase: str, state_json: bytes) -> list[str]:
    """For poststart and poststop: every hook runs; a failure is a warning
    (the spec: "the runtime MUST log a warning, but the remaining hooks and
    lifecycle continue as if the hook had succeeded")."""
    warnings = []
    for i, hook in enumerate(hooks):
        try:
            run_hook(hook, f"hooks.{phase}[{i}]", state_json)
        except HookError as e:
            warnings.append(str(e))
    return warnings


def run_hook(hook: Hook, where: str, state_json: bytes) -> None:
    argv = hook.args or [hook.path]
    env = dict(item.split("=", 1) for item in hook.env)
    try:
        done = subprocess.run(argv, executable=hook.path, input=state_json, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=hook.timeout, close_fds=True, cwd="/")
    except subprocess.TimeoutExpired:
        raise HookError(f"{where} ({hook.path}): timed out after {hook.timeout} s") from None
    except OSError as e:
        raise HookError(f"{where} ({hook.path}): {os.strerror(e.errno or 0)}") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        why = f"exit status {done.returncode}" if done.returncode > 0 else f"killed by signal {-done.returncode}"
        raise HookError(f"{where} ({hook.path}) failed: {why}" + (f": {lines[-1]}" if lines else ""))
