"""A container's cgroups on cgroup v1, v2 and hybrid hosts (the cgroupfs driver).

When the runtime calls what::

    create   Cgroup.for_container(linux.cgroupsPath, id)
             .create()                 mkdir in every hierarchy
             .apply(linux.resources)   every limit, before any process is inside
             .add(init_pid)            while init makes the rootfs; init then
                                       unshares CLONE_NEWCGROUP (the new cgroup
                                       namespace is rooted at the cgroup its
                                       creator is in), before anything of the
                                       container runs
             state.json <- .to_record()
    later    Cgroup.from_record(state["cgroup"])
    exec     .add(stage1_pid) before it joins the container's cgroup namespace
    ps/kill  .pids()                   the container's processes, sub-cgroups included
    pause    .freeze() / .thaw(); state: .frozen() -> "paused"
    update   .update(resources)        only the given fields change
    events   .stats(), .oom_count()
    delete   kill every process of .pids(), wait for them, then .destroy()

Modules: layout (which hierarchies, where the container goes), resources
(linux.resources parsed and checked), v1 / v2 (fields -> files), convert
(v1 numbers -> v2), devices (the rules and their v1 semantics), bpf_devices
(those semantics as a cgroup v2 BPF device program), tree (mkdir/rmdir/walk),
freezer, stats.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nsbox.cgroups.cgroup import Cgroup
    from nsbox.cgroups.errors import CgroupError

__all__ = ["Cgroup", "CgroupError"]


def __getattr__(name: str) -> object:
    # Loaded on first use (PEP 562): a verb that needs only a submodule
    # (warmup, recorded) does not pay for the whole package (~3 ms).
    if name == "Cgroup":
        from nsbox.cgroups.cgroup import Cgroup

        return Cgroup
    if name == "CgroupError":
        from nsbox.cgroups.errors import CgroupError

        return CgroupError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
