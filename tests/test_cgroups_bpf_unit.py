"""The cgroup v2 device filter without a kernel: the programs bpf_devices
builds, read back as text, and run by a small BPF interpreter against the
v1 devices model (devices.effective / v1_allows) on tables of cases and on
random rule lists."""

from __future__ import annotations

import itertools
import random
import struct

import pytest

from nsbox.cgroups import bpf_devices as bd
from nsbox.cgroups.devices import RUNC_DEFAULT_RULES, effective, runc_rules, v1_allows, v1_writes
from nsbox.cgroups.resources import DeviceRule, Resources


def rules_of(*specs: str) -> list[DeviceRule]:
    """Rules written as devices.allow/deny lines: ``+c 1:3 rw`` allows, ``-a`` denies everything."""
    raw = []
    for spec in specs:
        verdict, rest = spec[0], spec[1:].split()
        rule: dict[str, object] = {"allow": verdict == "+", "type": rest[0]}
        if len(rest) > 1:
            major, minor = rest[1].split(":")
            if major != "*":
                rule["major"] = int(major)
            if minor != "*":
                rule["minor"] = int(minor)
            rule["access"] = rest[2]
        raw.append(rule)
    devices = Resources({"devices": raw}).devices
    assert devices is not None
    return devices


# -- a BPF interpreter for the instructions the builder uses ---------------------

MASK64 = (1 << 64) - 1


def run(insns: bytes, dev_type: str, major: int, minor: int, access: str) -> bool:
    """Run the program on one request, as the kernel would; checks on the way
    what the verifier insists on (jumps forward and in range, r0 0 or 1)."""
    bits = sum(bd.ACCESS_BITS[c] for c in access)
    ctx = struct.pack("=III", (bits << 16) | bd.DEV_TYPES[dev_type], major, minor)
    prog = bd.decode(insns)
    regs = [0] * 11
    pc = 0
    steps = 0
    while True:
        assert 0 <= pc < len(prog), f"pc {pc} out of the program"
        steps += 1
        assert steps <= len(prog), "a loop"
        code, dst, src, off, imm = prog[pc]
        sext = imm & MASK64
        pc += 1
        if code == bd.LDXW:
            assert src == 1 and off in (0, 4, 8), "only the context is read"
            regs[dst] = struct.unpack_from("=I", ctx, off)[0]
        elif code == bd.MOV32_K:
            regs[dst] = imm & 0xFFFFFFFF
        elif code == bd.AND32_K:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code in (bd.JA, bd.JNE_K, bd.JSET_K):
            assert off > 0, "backward or empty jump"
            taken = (code == bd.JA or (code == bd.JNE_K and regs[dst] != sext)
                     or (code == bd.JSET_K and regs[dst] & sext != 0))
            if taken:
                pc += off
        elif code == bd.EXIT:
            assert regs[0] in (0, 1)
            return bool(regs[0])
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


DEVICES = [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 4, 64), ("c", 136, 0), ("c", 136, 7), ("b", 8, 0),
           ("b", 8, 16), ("b", 1, 3), ("c", 10, 200)]
ACCESSES = ["r", "w", "m", "rw", "rm", "wm", "rwm"]


def agree(rules: list[DeviceRule]) -> None:
    """The program grants exactly what the v1 model grants, for every device and access."""
    insns = bd.program(rules)
    state = effective(rules)
    for (t, major, minor), access in itertools.product(DEVICES, ACCESSES):
        assert run(insns, t, major, minor, access) == v1_allows(state, t, major, minor, access), \
            (t, major, minor, access, [r.cgroup_string() for r in rules])


# -- the instructions ------------------------------------------------------------

def test_instruction_encoding():
    # struct bpf_insn on a little-endian machine: code, dst | src << 4, off, imm
    assert bd.encode(bd.LDXW, 2, 1, 4).hex() == "6112040000000000"
    assert bd.encode(bd.MOV32_K, 0, imm=1).hex() == "b400000001000000"
    assert bd.encode(bd.JNE_K, 5, off=-2, imm=229).hex() == "5505feffe5000000"
    assert bd.encode(bd.EXIT).hex() == "9500000000000000"
    assert bd.decode(bd.encode(bd.JSET_K, 3, off=7, imm=6)) == [(bd.JSET_K, 3, 0, 7, 6)]


def test_deny_by_default_program():
    insns = bd.program(rules_of("-a", "+c 1:3 rwm", "+c 1:5 r"))
    assert bd.disassemble(insns) == [
        "ldxw r2, [r1+0]",   # c 1:3 rwm
        "and32 r2, 0xffff",  # rwm: whatever the access, only the type is left
        "jne r2, 2, +6",     # not a char device: on to the next exception
        "ldxw r2, [r1+4]",
        "jne r2, 1, +4",
        "ldxw r2, [r1+8]",
        "jne r2, 3, +2",
        "mov32 r0, 1",
        "exit",
        "ldxw r2, [r1+0]",   # c 1:5 r
        "and32 r2, 0x5ffff",  # keeps w (4) and m (1): asking for either leaves more than the type
        "jne r2, 2, +6",
        "ldxw r2, [r1+4]",
        "jne r2, 1, +4",
        "ldxw r2, [r1+8]",
        "jne r2, 5, +2",
        "mov32 r0, 1",
        "exit",
        "mov32 r0, 0",       # the default: deny
        "exit",
    ]


def test_allow_by_default_program():
    insns = bd.program(rules_of("+a", "-b 8:* w", "-c 1:3 rwm"))
    assert bd.disassemble(insns) == [
        "ldxw r2, [r1+0]",      # b 8:* w
        "jset r2, 0x40000, +1",  # asks for w (among others): on to the device
        "ja +6",
        "and32 r2, 0xffff",
        "jne r2, 1, +4",
        "ldxw r2, [r1+4]",
        "jne r2, 8, +2",
        "mov32 r0, 0",
        "exit",
        "ldxw r2, [r1+0]",      # c 1:3 rwm
        "jset r2, 0x70000, +1",
        "ja +8",
        "and32 r2, 0xffff",
        "jne r2, 2, +6",
        "ldxw r2, [r1+4]",
        "jne r2, 1, +4",
        "ldxw r2, [r1+8]",
        "jne r2, 3, +2",
        "mov32 r0, 0",
        "exit",
        "mov32 r0, 1",          # the default: allow
        "exit",
    ]


def test_deny_all_and_allow_all_programs():
    assert bd.disassemble(bd.program(rules_of("-a"))) == ["mov32 r0, 0", "exit"]
    assert bd.disassemble(bd.program([])) == ["mov32 r0, 0", "exit"]  # nothing given: deny-all
    assert bd.disassemble(bd.program(rules_of("-a", "+c 1:3 rwm", "+a"))) == ["mov32 r0, 1", "exit"]


def test_wildcards_leave_their_test_out():
    listing = bd.disassemble(bd.program(rules_of("-a", "+c *:* m", "+c 136:* rw", "+b *:0 r")))
    assert listing == [
        "ldxw r2, [r1+0]", "and32 r2, 0x6ffff", "jne r2, 2, +2", "mov32 r0, 1", "exit",   # c *:* m
        "ldxw r2, [r1+0]", "and32 r2, 0x1ffff", "jne r2, 2, +4",                          # c 136:* rw
        "ldxw r2, [r1+4]", "jne r2, 136, +2", "mov32 r0, 1", "exit",
        "ldxw r2, [r1+0]", "and32 r2, 0x5ffff", "jne r2, 1, +4",                          # b *:0 r
        "ldxw r2, [r1+8]", "jne r2, 0, +2", "mov32 r0, 1", "exit",
        "mov32 r0, 0", "exit"]
    # -1 is the wildcard too (runc sends it)
    explicit = Resources({"devices": [{"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"}]}).devices
    assert bd.program(explicit) == bd.program(rules_of("+c *:* m"))


def test_numbers_no_device_can_have_are_left_out():
    # a dev_t has 12 bits of major and 20 of minor: these match nothing
    assert bd.program(rules_of("-a", "+c 4096:0 rwm", "+c 1:1048576 rwm")) == bd.program(rules_of("-a"))
    assert len(bd.decode(bd.program(rules_of("-a", "+c 4095:1048575 rwm")))) == 9 + 2


def test_three_hundred_rules_fit_the_unprivileged_limit():
    for default, verdict in (("-a", "+"), ("+a", "-")):
        specs = [default] + [f"{verdict}{'cb'[i % 2]} {i % 250}:{i} {['r', 'rw', 'rwm', 'm'][i % 4]}"
                             for i in range(300)]
        rules = rules_of(*specs)
        insns = bd.program(rules)
        assert len(insns) // 8 == (9 if default == "-a" else 11) * 300 + 2 < 4096
        agree(rules)


def test_too_big_a_program_is_refused(monkeypatch):
    from nsbox.cgroups import CgroupError

    monkeypatch.setattr(bd, "MAX_INSNS", 20)
    with pytest.raises(CgroupError, match=r"^linux.resources.devices: the device rules make a BPF program of 29 "):
        bd.program(rules_of("-a", "+c 1:3 r", "+c 1:5 r", "+c 1:7 r"))


# -- the semantics, against the v1 model ---------------------------------------------

#: (rules, device, access, allowed): what the v1 kernel does, case by case
TABLE = [
    # deny by default: one exception must cover every access asked for
    (["-a", "+c 1:3 rwm"], ("c", 1, 3), "rw", True),
    (["-a", "+c 1:3 rwm"], ("c", 1, 5), "r", False),
    (["-a", "+c 1:5 r"], ("c", 1, 5), "r", True),
    (["-a", "+c 1:5 r"], ("c", 1, 5), "w", False),
    (["-a", "+c 1:5 r"], ("c", 1, 5), "rw", False),
    (["-a", "+c 1:3 r", "+c 1:3 w"], ("c", 1, 3), "rw", True),  # same key: merged into rw
    (["-a", "+c 1:* r", "+c 1:3 w"], ("c", 1, 3), "rw", False),  # two keys: neither covers rw
    (["-a", "+c 1:* r", "+c 1:3 w"], ("c", 1, 3), "w", True),
    (["-a", "+c 1:3 rwm", "-c 1:3 w"], ("c", 1, 3), "r", True),   # deny takes w away
    (["-a", "+c 1:3 rwm", "-c 1:3 w"], ("c", 1, 3), "rw", False),
    (["-a", "+c 1:* rwm", "-c 1:3 rwm"], ("c", 1, 3), "rw", True),  # a deny cannot carve into a wildcard
    (["-a", "+c 8:0 rwm"], ("b", 8, 0), "r", False),  # char and block are different devices
    (["-a", "+c *:* m"], ("c", 4, 64), "m", True),
    (["-a", "+c *:* m"], ("c", 4, 64), "r", False),
    ([], ("c", 1, 3), "r", False),  # nothing given: deny-all
    # allow by default: an exception denies if it shares any access
    (["+a", "-c 1:3 w"], ("c", 1, 3), "rw", False),
    (["+a", "-c 1:3 w"], ("c", 1, 3), "r", True),
    (["+a", "-c 1:3 w"], ("c", 1, 5), "rw", True),
    (["+a", "-c 1:* w", "+c 1:3 w"], ("c", 1, 3), "w", False),  # the allow removes only c 1:3's exception
    (["+a", "-c 1:3 w", "+c 1:3 w"], ("c", 1, 3), "w", True),
    # the last type-a rule resets everything before it
    (["+c 1:3 rwm", "-a"], ("c", 1, 3), "r", False),
    (["-a", "+c 1:5 rwm", "+a", "-b 8:0 w"], ("c", 1, 5), "rw", True),
    (["-a", "+c 1:5 rwm", "+a", "-b 8:0 w"], ("b", 8, 0), "w", False),
    (["-a", "+c 1:5 rwm", "+a", "-b 8:0 w"], ("b", 8, 0), "r", True),
]


@pytest.mark.parametrize("specs, device, access, allowed", TABLE)
def test_semantic_table(specs, device, access, allowed):
    rules = rules_of(*specs)
    assert v1_allows(effective(rules), *device, access) == allowed
    assert run(bd.program(rules), *device, access) == allowed


def test_runc_rules_program_agrees_with_v1():
    rules = runc_rules(rules_of("-a", "+c 4:64 rw", "+b 8:16 rwm"))
    agree(rules)
    insns = bd.program(rules)
    assert run(insns, "c", 1, 3, "rw") and run(insns, "c", 136, 7, "rw") and run(insns, "b", 8, 16, "rwm")
    assert run(insns, "b", 8, 0, "m") and not run(insns, "b", 8, 0, "r")  # runc's mknod-anything rules
    assert run(insns, "c", 4, 64, "m")  # runc's c *:* m
    # rw from the spec's rule and m from c *:* m, but no one exception has all three
    assert run(insns, "c", 4, 64, "rw") and not run(insns, "c", 4, 64, "rwm")
    assert len(RUNC_DEFAULT_RULES) == 11


def test_random_rule_lists_agree_with_v1():
    rng = random.Random(4)
    for _ in range(400):
        specs = []
        for _ in range(rng.randrange(0, 9)):
            if rng.random() < 0.12:
                specs.append(rng.choice("+-") + "a")
                continue
            major = rng.choice(["*", "1", "8", "136"])
            minor = rng.choice(["*", "0", "3", "5", "7"])
            access = "".join(c for c in "rwm" if rng.random() < 0.5) or "r"
            specs.append(f"{rng.choice('+-')}{rng.choice('cb')} {major}:{minor} {access}")
        agree(rules_of(*specs))


def test_v1_writes_end_in_the_same_state():
    """What v1_writes sends the kernel (rules before the last wildcard left
    out) ends in the state the model computes from the whole list."""
    rng = random.Random(7)
    for _ in range(200):
        specs = [rng.choice(["+a", "-a", "+c 1:3 rw", "-c 1:3 w", "+b 8:* r", "-c *:* m", "+c 1:* rwm"])
                 for _ in range(rng.randrange(0, 7))]
        rules = rules_of(*specs)
        written = [rule for _, _, rule in v1_writes(rules)]
        replay = [r if r is not None else rules_of("-a")[0] for r in written]
        assert effective(replay) == effective(rules), specs
