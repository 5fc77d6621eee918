"""``linux.resources.devices``: the device access rules, how the v1 devices
controller takes them, and the model of what they mean.

As in runc, the rules enforced are the spec's, then an allow rule for every
``linux.devices`` node, then runc's default nodes (/dev/null, /dev/zero, the
ptys...): without those last ones a config's usual "deny all" would leave
the container unable to open its own /dev/null.

The rules are applied in order on top of "deny everything" (runc's
semantics: its rule emulator starts from an empty allow-list).  The v1
kernel keeps a default (allow-all or deny-all) and a list of exceptions; a
rule of type ``a`` resets both.  So the writes are: the last wildcard rule
(or ``devices.deny a`` when there is none), then every rule after it, in
order, each to devices.allow or devices.deny.  Rules before the last
wildcard would be wiped by it and are not written.

cgroup v2 has no devices files: access is decided by a BPF program attached
to the cgroup (BPF_CGROUP_DEVICE).  :func:`effective` computes, from the
same rule list, the state the v1 kernel would end up in (its default and
its exceptions, exactly as security/device_cgroup.c keeps them), and
bpf_devices.py compiles that state into the program; :func:`v1_allows` is
the v1 kernel's access check on it, the reference the program is tested
against.  Both controllers therefore grant the same accesses.
"""

from __future__ import annotations

from nsbox.cgroups.resources import DeviceRule, _Obj

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def v1_writes(rules: list[DeviceRule]) -> list[tuple[str, str, DeviceRule | None]]:
    """(file, line, rule) in the order to write them; rule None for the implicit deny-all."""
    last = max((i for i, r in enumerate(rules) if r.wildcard), default=-1)
    out: list[tuple[str, str, DeviceRule | None]] = []
    if last < 0:
        out.append(("devices.deny", "a", None))
    else:
        first = rules[last]
        out.append(("devices.allow" if first.allow else "devices.deny", "a", first))
    for rule in rules[last + 1:]:
        out.append(("devices.allow" if rule.allow else "devices.deny", rule.cgroup_string(), rule))
    return out


#: one exception of the v1 model: (type "c" or "b", major, minor, access in
#: "rwm" order); -1 is the wildcard ``*``
DeviceException = tuple[str, int, int, str]


def _number(n: int | None) -> int:
    return -1 if n is None else n


def effective(rules: list[DeviceRule]) -> tuple[bool, list[DeviceException]]:
    """(allow by default, exceptions): the state the v1 kernel is in after
    *rules*, applied in order on top of deny-all (security/device_cgroup.c):

    * type ``a`` sets the default to the rule's verdict and drops every
      exception;
    * a rule whose verdict is not the default's adds an exception, merging
      its access into an existing one for the same type:major:minor;
    * a rule whose verdict is the default's takes its access away from the
      exception for the same type:major:minor, and drops the exception when
      no access is left.  Keys match exactly: ``c 1:*`` does not touch
      ``c 1:3``.
    """
    default_allow = False
    table: dict[tuple[str, int, int], set[str]] = {}
    for rule in rules:
        if rule.wildcard:
            default_allow, table = rule.allow, {}
            continue
        key = (rule.type, _number(rule.major), _number(rule.minor))
        if rule.allow != default_allow:
            table.setdefault(key, set()).update(rule.access)
        elif key in table:
            table[key] -= set(rule.access)
            if not table[key]:
                del table[key]
    return default_allow, [(t, major, minor, "".join(c for c in "rwm" if c in access))
                           for (t, major, minor), access in table.items()]


def v1_allows(state: tuple[bool, list[DeviceException]], dev_type: str, major: int, minor: int,
              access: str) -> bool:
    """The v1 kernel's check of one access (*access*: the letters asked for
    together, ``rw`` for an O_RDWR open) to device *dev_type* *major*:*minor*,
    in the *state* from :func:`effective`.

    Deny by default: allowed when ONE exception covers every letter asked
    for (``c 1:* r`` plus ``c 1:3 w`` does not allow an ``rw`` open of 1:3).
    Allow by default: denied when an exception shares ANY letter with the
    request.
    """
    default_allow, exceptions = state
    for t, ex_major, ex_minor, ex_access in exceptions:
        if t != dev_type or ex_major not in (-1, major) or ex_minor not in (-1, minor):
            continue
        if default_allow and set(access) & set(ex_access):
            return False
        if not default_allow and set(access) <= set(ex_access):
            return True
    return default_allow


def allows_everything(rules: list[DeviceRule]) -> bool:
    """True when the rules end as "every device, every access" (nothing to enforce)."""
    default_allow, exceptions = effective(rules)
    return default_allow and not exceptions


#: The rules runc adds after the spec's own (specconv.AllowedDevices): mknod of
#: any device, and the standard nodes every container's /dev has.  runc's
#: maintainers call the mknod rules questionable but keep them for
#: compatibility (mknod alone opens nothing: reading a node needs r or w).
RUNC_DEFAULT_RULES: tuple[dict[str, object], ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},   # /dev/random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},   # /dev/full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},   # /dev/tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},   # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},   # /dev/urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},            # /dev/pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},   # /dev/ptmx
    # /dev/net/tun: dropped in runc 1.2.0-rc1, restored after the regressions it caused
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)


def _key(rule: dict[str, object]) -> tuple[object, ...]:
    major, minor = rule.get("major"), rule.get("minor")
    return (rule.get("type") or "a", -1 if major is None else major, -1 if minor is None else minor)


#: the JSON paths of the rules runc_rules adds
_ADDED = ("linux.devices[", "(runc's default device rule")

_DEFAULT_ACCESS = {_key(r): str(r["access"]) for r in RUNC_DEFAULT_RULES if r["allow"]}


def is_standard(rules: list[DeviceRule]) -> bool:
    """The list every container gets: deny-all (or nothing) first, then only
    allow rules for runc's default nodes (as clients like docker also send
    them) and for the config's own linux.devices nodes."""
    for i, rule in enumerate(rules):
        if rule.wildcard:
            if rule.allow or i != 0:
                return False
            continue
        if rule.path.startswith(_ADDED):
            continue
        key = (rule.type, -1 if rule.major is None else rule.major, -1 if rule.minor is None else rule.minor)
        if not rule.allow or key not in _DEFAULT_ACCESS or set(rule.access) - set(_DEFAULT_ACCESS[key]):
            return False
    return True


def runc_rules(given: list[DeviceRule] | None) -> list[DeviceRule]:
    """The rules runc enforces for a config (its specconv.CreateCgroupConfig):
    linux.resources.devices, then RUNC_DEFAULT_RULES.  Given or not, the list
    starts from deny-all.  The nodes of linux.devices get no rule of their
    own: runc 1.1 adds none (a client that wants them opened says so in
    linux.resources.devices, as podman's --device does, with the access it
    asked for).
    """
    out = list(given or [])
    out.extend(DeviceRule(_Obj(dict(r), f"(runc's default device rule {j})")) for j, r in enumerate(RUNC_DEFAULT_RULES))
    return out
