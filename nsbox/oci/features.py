"""The runtime-spec features document (features.md): what this runtime
really supports.  Claims here are tested; what is not done yet is absent
or marked disabled."""

from __future__ import annotations

from nsbox.oci.spec import HOOK_NAMES, NAMESPACE_NAMES
from nsbox.oci.state import OCI_VERSION


def features() -> dict[str, object]:
    from nsbox.rootfs.options import KNOWN_OPTIONS
    from nsbox.security.capabilities import NAMES

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": sorted(KNOWN_OPTIONS),
        "linux": {
            "namespaces": list(NAMESPACE_NAMES),
            "capabilities": list(NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.nsbox.version": "0.1.0"},
    }


def _seccomp() -> dict[str, object]:
    from nsbox.security import seccomp

    return {
        "enabled": True,
        "actions": list(seccomp.ACTION_NAMES),
        "operators": list(seccomp.OPERATOR_NAMES),
        "archs": sorted(seccomp.ARCHITECTURES),
        "knownFlags": list(seccomp.FLAG_NAMES),
        "supportedFlags": seccomp.supported_flags(),
    }


def unsupported(spec: object, sys_root: str = "/sys") -> tuple[str, str] | None:
    """The first thing *spec* asks for that nsbox cannot do here, as
    (JSON path, why), or None.  The runtime spec: a setting the runtime
    cannot apply is an error, never silently dropped."""
    import os

    process = getattr(spec, "process", None)
    if process is not None and process.apparmor_profile:
        if not os.path.isdir(f"{sys_root}/kernel/security/apparmor"):
            return "process.apparmorProfile", "AppArmor is not enabled on this host"
        return "process.apparmorProfile", "AppArmor profiles are not supported by nsbox yet"
    if process is not None and process.selinux_label:
        if not os.path.isdir(f"{sys_root}/fs/selinux"):
            return "process.selinuxLabel", "SELinux is not enabled on this host"
        return "process.selinuxLabel", "SELinux labels are not supported by nsbox yet"
    return None

