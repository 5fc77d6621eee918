"""The OCI runtime spec's config.json, parsed once into typed objects.

Every check names the JSON path of what is wrong (``process.args[0]: must be
a string``), so a client sees one line that says where to look.  Fields
nsbox does not know are ignored, as the spec requires of unknown
properties; fields it knows are checked for type and value.

Sections that other modules own are kept as validated raw JSON here
(``linux.resources`` for cgroups, ``linux.seccomp``) and parsed there.
"""

from __future__ import annotations

import os

from nsbox.errors import NsboxError
from nsbox.jsonread import JsonObject

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

#: namespace "type" in config.json -> /proc/PID/ns name
NAMESPACE_NAMES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc",
    "uts": "uts", "user": "user", "cgroup": "cgroup", "time": "time",
}

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class SpecError(NsboxError):
    """config.json is malformed or asks for something unsupported; names the JSON path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class _Obj(JsonObject):
    """A config.json object being read; problems are SpecErrors."""

    __slots__ = ()

    @staticmethod
    def fail(path: str, problem: str) -> NoReturn:
        raise SpecError(path, problem)


class User:
    __slots__ = ("uid", "gid", "umask", "additional_gids")

    def __init__(self, o: _Obj | None) -> None:
        if o is None:
            self.uid, self.gid, self.umask, self.additional_gids = 0, 0, None, []
            return
        self.uid = o.int("uid", 0, minimum=0, maximum=0xFFFFFFFE)
        self.gid = o.int("gid", 0, minimum=0, maximum=0xFFFFFFFE)
        self.umask = o.int("umask", None, minimum=0, maximum=0o777)
        gids = o.data.get("additionalGids") or []
        if not isinstance(gids, list) or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gids):
            raise SpecError(o.at("additionalGids"), "must be an array of non-negative integers")
        self.additional_gids = list(gids)
        if o.has("username"):
            raise SpecError(o.at("username"), "is for Windows containers; use uid and gid")


class Rlimit:
    __slots__ = ("type", "soft", "hard")

    def __init__(self, o: _Obj) -> None:
        self.type = o.str("type", required=True)
        if not self.type or not self.type.startswith("RLIMIT_"):  # type: ignore[union-attr]
            raise SpecError(o.at("type"), f"unknown rlimit {self.type!r}")
        self.soft = o.int("soft", required=True, minimum=0)
        self.hard = o.int("hard", required=True, minimum=0)


class Capabilities:
    """The five capability sets, as names (``CAP_CHOWN``)."""

    __slots__ = ("bounding", "effective", "inheritable", "permitted", "ambient")

    def __init__(self, o: _Obj | None) -> None:
        for name in self.__slots__:
            setattr(self, name, o.strs(name) if o is not None else [])
        self.present = o is not None  # type: ignore[misc]

    __slots__ += ("present",)  # type: ignore[assignment]


class Process:
    __slots__ = ("terminal", "console_size", "cwd", "env", "args", "command_line", "user", "rlimits",
                 "capabilities", "no_new_privileges", "oom_score_adj", "apparmor_profile",
                 "selinux_label", "io_priority", "scheduler")

    def __init__(self, o: _Obj) -> None:
        self.terminal = o.bool("terminal")
        size = o.obj("consoleSize")
        self.console_size = None
        if size is not None:
            self.console_size = (size.int("height", 0, minimum=0), size.int("width", 0, minimum=0))
        self.cwd = o.str("cwd", required=True)
        if not os.path.isabs(self.cwd):  # type: ignore[arg-type]
            raise SpecError(o.at("cwd"), f"must be an absolute path, not {self.cwd!r}")
        self.env = o.strs("env")
        for i, item in enumerate(self.env):
            if "=" not in item:
                raise SpecError(f"{o.at('env')}[{i}]", f"{item!r} is not KEY=VALUE")
        self.args = o.strs("args")
        self.command_line = o.str("commandLine")
        if not self.args and self.command_line is None:
            raise SpecError(o.at("args"), "must name the program to run")
        self.user = User(o.obj("user"))
        self.rlimits = [Rlimit(r) for r in o.objs("rlimits")]
        seen = set()
        for r, raw in zip(self.rlimits, o.objs("rlimits")):
            if r.type in seen:
                raise SpecError(raw.at("type"), f"{r.type} is given twice")
            seen.add(r.type)
        self.capabilities = Capabilities(o.obj("capabilities"))
        self.no_new_privileges = o.bool("noNewPrivileges")
        self.oom_score_adj = o.int("oomScoreAdj", None, minimum=-1000, maximum=1000)
        self.apparmor_profile = o.str("apparmorProfile")
        self.selinux_label = o.str("selinuxLabel")
        self.io_priority = o.data.get("ioPriority")
        self.scheduler = o.data.get("scheduler")


class Mount:
    __slots__ = ("destination", "type", "source", "options", "uid_mappings", "gid_mappings")

    def __init__(self, o: _Obj) -> None:
        self.destination = o.str("destination", required=True)
        if not self.destination:
            raise SpecError(o.at("destination"), "must not be empty")
        self.type = o.str("type")
        self.source = o.str("source")
        self.options = o.strs("options")
        self.uid_mappings = [IdMapping(m) for m in o.objs("uidMappings")]
        self.gid_mappings = [IdMapping(m) for m in o.objs("gidMappings")]

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options


class IdMapping:
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, o: _Obj) -> None:
        self.container_id = o.int("containerID", required=True, minimum=0)
        self.host_id = o.int("hostID", required=True, minimum=0)
        self.size = o.int("size", required=True, minimum=1)


class NamespaceSpec:
    __slots__ = ("type", "proc_name", "path")

    def __init__(self, o: _Obj) -> None:
        self.type = o.str("type", required=True)
        if self.type not in NAMESPACE_NAMES:
            raise SpecError(o.at("type"), f"unknown namespace type {self.type!r} "
                            f"(one of {', '.join(NAMESPACE_NAMES)})")
        self.proc_name = NAMESPACE_NAMES[self.type]  # type: ignore[index]
        self.path = o.str("path")
        if self.path is not None and not os.path.isabs(self.path):
            raise SpecError(o.at("path"), f"must be an absolute path, not {self.path!r}")


class Device:
    __slots__ = ("type", "path", "major", "minor", "file_mode", "uid", "gid")

    def __init__(self, o: _Obj) -> None:
        self.type = o.str("type", required=True)
        if self.type not in ("c", "b", "u", "p"):
            raise SpecError(o.at("type"), f"must be c, b, u or p, not {self.type!r}")
        self.path = o.str("path", required=True)
        if not os.path.isabs(self.path):  # type: ignore[arg-type]
            raise SpecError(o.at("path"), f"must be an absolute path, not {self.path!r}")
        needs_numbers = self.type != "p"
        self.major = o.int("major", None if not needs_numbers else None, required=needs_numbers, minimum=0)
        self.minor = o.int("minor", None, required=needs_numbers, minimum=0)
        self.file_mode = o.int("fileMode", None, minimum=0, maximum=0xFFFFFFFF)  # podman sends S_IFCHR too
        self.uid = o.int("uid", None, minimum=0)
        self.gid = o.int("gid", None, minimum=0)


class Hook:
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, o: _Obj) -> None:
        self.path = o.str("path", required=True)
        if not os.path.isabs(self.path):  # type: ignore[arg-type]
            raise SpecError(o.at("path"), f"must be an absolute path, not {self.path!r}")
        self.args = o.strs("args")
        self.env = o.strs("env")
        self.timeout = o.int("timeout", None)
        if self.timeout is not None and self.timeout <= 0:
            raise SpecError(o.at("timeout"), "must be greater than zero")


class Linux:
    __slots__ = ("namespaces", "uid_mappings", "gid_mappings", "devices", "cgroups_path", "resources",
                 "masked_paths", "readonly_paths", "rootfs_propagation", "sysctl", "seccomp",
                 "personality", "mount_label", "intel_rdt", "time_offsets")

    def __init__(self, o: _Obj | None) -> None:
        o = o or _Obj({}, "linux")
        self.namespaces = [NamespaceSpec(n) for n in o.objs("namespaces")]
        seen: set[str] = set()
        for n, raw in zip(self.namespaces, o.objs("namespaces")):
            if n.type in seen:
                raise SpecError(raw.at("type"), f"namespace {n.type!r} is listed twice")
            seen.add(n.type)  # type: ignore[arg-type]
        self.uid_mappings = [IdMapping(m) for m in o.objs("uidMappings")]
        self.gid_mappings = [IdMapping(m) for m in o.objs("gidMappings")]
        self.devices = [Device(d) for d in o.objs("devices")]
        self.cgroups_path = o.str("cgroupsPath")
        resources = o.obj("resources")
        self.resources: dict[str, object] = resources.data if resources else {}
        self.masked_paths = o.strs("maskedPaths")
        self.readonly_paths = o.strs("readonlyPaths")
        self.rootfs_propagation = o.str("rootfsPropagation")
        if self.rootfs_propagation not in (None, "", "shared", "slave", "private", "unbindable",
                                           "rshared", "rslave", "rprivate", "runbindable"):
            raise SpecError(o.at("rootfsPropagation"), f"unknown propagation {self.rootfs_propagation!r}")
        self.sysctl = o.str_map("sysctl")
        seccomp = o.obj("seccomp")
        self.seccomp: dict[str, object] | None = seccomp.data if seccomp else None
        personality = o.obj("personality")
        self.personality = None
        if personality is not None:
            self.personality = personality.str("domain", required=True)
            if self.personality not in ("LINUX", "LINUX32"):
                raise SpecError(personality.at("domain"), f"must be LINUX or LINUX32, not {self.personality!r}")
        self.mount_label = o.str("mountLabel")
        self.intel_rdt = o.data.get("intelRdt")
        self.time_offsets = o.data.get("timeOffsets")

    def namespace(self, type: str) -> NamespaceSpec | None:
        for n in self.namespaces:
            if n.type == type:
                return n
        return None


class Spec:
    """A parsed config.json.  ``root_path`` is absolute (resolved against the bundle)."""

    __slots__ = ("oci_version", "root_path", "root_readonly", "hostname", "domainname", "mounts",
                 "process", "hooks", "annotations", "linux", "bundle", "raw")

    def __init__(self, data: object, bundle: str) -> None:
        o = _Obj(data, "")
        self.raw = data
        self.bundle = bundle
        self.oci_version = o.str("ociVersion", required=True)
        if not self.oci_version.startswith("1."):  # type: ignore[union-attr]
            raise SpecError("ociVersion", f"{self.oci_version!r} is not a 1.x version of the runtime spec")
        root = o.obj("root")
        if root is None:
            raise SpecError("root", "is required")
        path = root.str("path", required=True)
        self.root_path = os.path.normpath(os.path.join(bundle, path))  # type: ignore[arg-type]
        self.root_readonly = root.bool("readonly")
        self.hostname = o.str("hostname")
        self.domainname = o.str("domainname")
        self.mounts = [Mount(m) for m in o.objs("mounts")]
        process = o.obj("process")
        self.process = Process(process) if process is not None else None
        hooks = o.obj("hooks")
        self.hooks: dict[str, list[Hook]] = {name: [] for name in HOOK_NAMES}
        if hooks is not None:
            for name in HOOK_NAMES:
                self.hooks[name] = [Hook(h) for h in hooks.objs(name)]
        self.annotations = o.str_map("annotations")
        self.linux = Linux(o.obj("linux"))
        self._check_consistency()

    def _check_consistency(self) -> None:
        user = self.linux.namespace("user")
        if (self.linux.uid_mappings or self.linux.gid_mappings) and (user is None or user.path):
            raise SpecError("linux.uidMappings", "mappings need a new user namespace in linux.namespaces")
        if user is not None and user.path is None and not self.linux.uid_mappings:
            raise SpecError("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings")
        # A uts namespace joined by path may be given a name too (runc and
        # the spec allow it); only the host's own must never be renamed.
        uts = self.linux.namespace("uts")
        if self.hostname and uts is None:
            raise SpecError("hostname", "setting the hostname needs a uts namespace in linux.namespaces")
        if self.domainname and uts is None:
            raise SpecError("domainname", "setting the domainname needs a uts namespace in linux.namespaces")


def parse_process(data: object, where: str = "process") -> Process:
    """A process object alone (``exec --process FILE``), checked like config.json's."""
    return Process(_Obj(data, where))


def read_config(bundle: str, config: str = "config.json") -> bytes:
    """The bytes of ``BUNDLE/config.json`` (or of *config*, when it is an absolute path)."""
    path = os.path.join(bundle, config)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise SpecError("", f"{path}: no such file (is {bundle} an OCI bundle?)") from None


def parse(raw: bytes, bundle: str, where: str = "config.json") -> Spec:
    from nsbox import jsonio

    try:
        data = jsonio.loads(raw)
    except ValueError as e:
        raise SpecError("", f"{where}: not valid JSON: {e}") from None
    return Spec(data, os.path.abspath(bundle))


def load(bundle: str, config: str = "config.json") -> Spec:
    """Read and parse ``BUNDLE/config.json``; every problem is a SpecError naming its place.
    Relative paths in it (root.path) are resolved against *bundle*."""
    return parse(read_config(bundle, config), bundle, os.path.join(bundle, config))
