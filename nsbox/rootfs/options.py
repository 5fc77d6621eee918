"""A config.json mount's ``options`` list, parsed into what the kernel is asked for.

The vocabulary is runc's (libcontainer/specconv ``parseMountOptions``), so a
bundle behaves the same under nsbox, runc and crun:

* mount(8)-style flags (``ro``, ``nosuid``, ``noatime`` …) become ``MS_*``
  bits; the negative forms (``rw``, ``suid``, ``atime`` …) clear the bit and
  remember that it was cleared, because a bind mount's remount must know the
  difference between "not asked for" and "asked to be off" (see
  mounts.py on locked flags).  Later options win over earlier ones.
* ``bind``/``rbind`` ask for a bind mount (``rbind`` with its submounts).
* propagation words (``private``, ``rslave`` …) are applied, in order, after
  the mount exists: mount(2) cannot create a mount and change its
  propagation in one call.
* ``r``-prefixed attributes (``rro``, ``rnosuid`` …) are mount_setattr(2)
  attributes applied with AT_RECURSIVE, i.e. to every submount of an rbind
  too, which a plain remount cannot do (it only changes the top mount).
* ``tmpcopyup`` (a runc extension): a tmpfs starts with a copy of what was in
  the directory it covers.
* ``x-*`` options belong to userspace tools (mount(8), systemd) and are never
  given to the kernel.
* anything else is filesystem data, joined with commas (``mode=755``,
  ``size=65536k``, ``newinstance``, ``lowerdir=…``).
"""

from __future__ import annotations

from nsbox._sys.consts import (
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)
from nsbox._sys.fs import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
    MS_I_VERSION,
)
from nsbox.oci.spec import SpecError

#: option -> (clears the flag?, MS_* flag).  ``defaults`` means nothing to the
#: kernel (runc passes it on as fs data, which tmpfs then rejects; we drop it).
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "iversion": (False, MS_I_VERSION),
    "noiversion": (True, MS_I_VERSION),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
}

PROPAGATION_FLAGS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

#: option -> (clears the attribute?, MOUNT_ATTR_*), applied with AT_RECURSIVE.
RECURSIVE_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME),
    "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

#: Options that need id-mapped mounts (mount_setattr MOUNT_ATTR_IDMAP).
IDMAP_OPTIONS = ("idmap", "ridmap")

EXTENSIONS = ("tmpcopyup",)


#: Every option word with a meaning to nsbox (for ``nsbox features``; the
#: id-mapping ones are refused, so they are not listed).
KNOWN_OPTIONS: frozenset[str] = frozenset([*MOUNT_FLAGS, *PROPAGATION_FLAGS, *RECURSIVE_ATTRS, *EXTENSIONS])


class MountOptions:
    """What one mount's ``options`` ask for.

    ``flags``: MS_* bits to pass to mount(2) (includes MS_BIND/MS_REC for
    bind/rbind and MS_REMOUNT for remount).  ``cleared``: MS_* bits the
    options explicitly turned off (``rw``, ``suid`` …).  ``propagation``:
    MS_* propagation changes, in order.  ``data``: the filesystem options.
    ``rec_attr_set``/``rec_attr_clr``: mount_setattr(2) attributes for the
    whole tree (``rro`` …).
    """

    __slots__ = ("flags", "cleared", "propagation", "data", "rec_attr_set", "rec_attr_clr",
                 "tmpcopyup", "userspace")

    def __init__(self) -> None:
        self.flags = 0
        self.cleared = 0
        self.propagation: list[int] = []
        self.data = ""
        self.rec_attr_set = 0
        self.rec_attr_clr = 0
        self.tmpcopyup = False
        self.userspace: list[str] = []

    @property
    def bind(self) -> bool:
        return bool(self.flags & MS_BIND)

    @property
    def recursive(self) -> bool:
        """rbind: the bind takes the source's submounts with it."""
        return self.flags & (MS_BIND | MS_REC) == MS_BIND | MS_REC

    @property
    def remount(self) -> bool:
        return bool(self.flags & MS_REMOUNT)

    @property
    def read_only(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    @property
    def read_only_recursive(self) -> bool:
        """``rro``: the mount and every submount read-only."""
        return bool(self.rec_attr_set & MOUNT_ATTR_RDONLY)

    @property
    def has_rec_attrs(self) -> bool:
        return bool(self.rec_attr_set or self.rec_attr_clr)

    def __repr__(self) -> str:
        return (f"MountOptions(flags={self.flags:#x}, cleared={self.cleared:#x}, propagation={self.propagation!r}, "
                f"data={self.data!r}, rec_attr_set={self.rec_attr_set:#x}, rec_attr_clr={self.rec_attr_clr:#x}, "
                f"tmpcopyup={self.tmpcopyup})")


def parse_mount_options(options: list[str], path: str = "options") -> MountOptions:
    """Parse a mount's ``options`` (*path* names them in errors, e.g. ``mounts[3].options``)."""
    m = MountOptions()
    data: list[str] = []
    for i, o in enumerate(options):
        flag = MOUNT_FLAGS.get(o)
        if flag is not None:
            clear, bit = flag
            if clear:
                m.flags &= ~bit
                m.cleared |= bit
            else:
                m.flags |= bit
                m.cleared &= ~bit
            continue
        prop = PROPAGATION_FLAGS.get(o)
        if prop is not None:
            m.propagation.append(prop)
            continue
        attr = RECURSIVE_ATTRS.get(o)
        if attr is not None:
            clear, bit = attr
            is_atime = bit & MOUNT_ATTR__ATIME == bit  # RELATIME is 0: an atime value too
            if clear:
                m.rec_attr_clr |= bit
                m.rec_attr_set &= ~bit
            else:
                if is_atime:
                    # The atime attributes are one value, not bits: the last one wins.
                    m.rec_attr_set &= ~MOUNT_ATTR__ATIME
                m.rec_attr_set |= bit
                m.rec_attr_clr &= ~bit
            if is_atime:
                # mount_setattr(2): an access-time setting must come with the
                # whole MOUNT_ATTR__ATIME field in attr_clr, or it is EINVAL.
                m.rec_attr_clr |= MOUNT_ATTR__ATIME
            continue
        if o == "tmpcopyup":
            m.tmpcopyup = True
            continue
        if o in IDMAP_OPTIONS:
            raise SpecError(f"{path}[{i}]", f"{o}: id-mapped mounts are not supported yet")
        if o.startswith("x-"):
            m.userspace.append(o)
            continue
        if o:
            data.append(o)
    m.data = ",".join(data)
    return m


def propagation_flag(name: str, path: str = "linux.rootfsPropagation") -> int:
    """The MS_* value of a propagation word such as ``rslave``."""
    try:
        return PROPAGATION_FLAGS[name]
    except KeyError:
        raise SpecError(path, f"unknown propagation {name!r}") from None
