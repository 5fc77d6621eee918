"""The OCI state document (runtime-spec "State"), as ``nsbox state`` prints it
and as hooks read it on stdin."""

from __future__ import annotations

OCI_VERSION = "1.2.0"

CREATING, CREATED, RUNNING, STOPPED, PAUSED = "creating", "created", "running", "stopped", "paused"


def oci_state(container_id: str, status: str, pid: int, bundle: str,
              annotations: dict[str, str] | None = None) -> dict[str, object]:
    state: dict[str, object] = {
        "ociVersion": OCI_VERSION,
        "id": container_id,
        "status": status,
        "bundle": bundle,
        "annotations": dict(annotations or {}),
    }
    # The spec: pid is REQUIRED when status is created or running, absent once stopped.
    if status in (CREATED, RUNNING, PAUSED, CREATING) and pid > 0:
        state["pid"] = pid
    return state


def to_json(state: dict[str, object]) -> bytes:
    from nsbox import jsonio

    return jsonio.dumps(state).encode()
