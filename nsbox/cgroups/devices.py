"""``linux.resources.devices``: the device access rules, as the v1 devices
controller takes them, and what cgroup v2 would need instead.

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
to the cgroup (BPF_CGROUP_DEVICE), which nsbox does not build yet.  Until it
does, a v2 host accepts only rule lists with nothing to enforce (allow-all)
or runc's standard list (deny all, then allow runc's default nodes), which
every client sends and which is then NOT enforced (Cgroup.warnings says so);
any other list is refused.
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


def allows_everything(rules: list[DeviceRule]) -> bool:
    """True when the rules end as "every device, every access" (nothing to enforce).

    Modelled on the kernel's v1 behaviour: a type-a rule sets the default;
    a later rule of the other polarity makes an exception that may remove
    access; a rule of the default's polarity only removes exceptions.
    """
    default_allow = False
    exceptions = False
    for rule in rules:
        if rule.wildcard:
            default_allow, exceptions = rule.allow, False
        elif rule.allow != default_allow:
            exceptions = True
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


def runc_rules(given: list[DeviceRule] | None, linux_devices: Iterable[object] = ()) -> list[DeviceRule]:
    """The rules runc enforces for a config (its specconv.CreateCgroupConfig):
    linux.resources.devices, then an allow-"rwm" rule for each linux.devices
    node (so the nodes the runtime makes can be opened), then
    RUNC_DEFAULT_RULES.  Given or not, the list starts from deny-all.

    *linux_devices*: nsbox.oci.spec.Device objects or dicts with type, major, minor.
    """
    out = list(given or [])
    for i, d in enumerate(linux_devices):
        def get(key: str, d: object = d) -> object:
            return d.get(key) if isinstance(d, dict) else getattr(d, key, None)

        kind = get("type")
        if kind == "p":
            continue  # a fifo: not the device controller's business
        out.append(DeviceRule(_Obj({"allow": True, "type": "c" if kind == "u" else kind, "major": get("major"),
                                    "minor": get("minor"), "access": "rwm"}, f"linux.devices[{i}]")))
    out.extend(DeviceRule(_Obj(dict(r), f"(runc's default device rule {j})")) for j, r in enumerate(RUNC_DEFAULT_RULES))
    return out
