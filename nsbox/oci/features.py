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
            "cgroup": {"v1": False, "v2": False, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.nsbox.version": "0.1.0"},
    }
