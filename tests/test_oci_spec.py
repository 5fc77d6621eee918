"""config.json parsing: real client configs are accepted; every error names its JSON path."""

from __future__ import annotations

import copy
import json
import os

import pytest

from nsbox.oci.default import default_spec
from nsbox.oci.spec import Spec, SpecError, load

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "clients")
CLIENT_CONFIGS = ["podman-config.json", "podman-config-bridge-tty.json", "containerd-ctr-config.json"]


def fixture(name: str) -> dict:
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path):
        pytest.skip(f"{path} missing (shared/ is laid beside the checkout)")
    with open(path) as f:
        return json.load(f)


@pytest.mark.parametrize("name", CLIENT_CONFIGS)
def test_real_client_configs_are_accepted(name):
    spec = Spec(fixture(name), "/bundle")
    assert spec.process is not None and spec.process.args
    assert spec.linux.namespace("mount") is not None


def test_containerd_relative_root_is_resolved_against_the_bundle():
    spec = Spec(fixture("containerd-ctr-config.json"), "/run/containerd/b")
    assert spec.root_path == "/run/containerd/b/rootfs"


def test_podman_details():
    spec = Spec(fixture("podman-config-bridge-tty.json"), "/b")
    net = spec.linux.namespace("network")
    assert net is not None and net.path.startswith("/run/netns/")
    assert spec.process.terminal is True
    assert [r.type for r in spec.process.rlimits] == ["RLIMIT_NOFILE", "RLIMIT_NPROC"]
    assert "CAP_NET_RAW" in spec.process.capabilities.bounding


def test_default_spec_round_trips():
    for rootless in (False, True):
        spec = Spec(default_spec(rootless=rootless), "/b")
        assert spec.root_readonly and spec.process.no_new_privileges


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.3.0-rc.1"])
def test_any_1x_version(version):
    data = default_spec()
    data["ociVersion"] = version
    assert Spec(data, "/b").oci_version == version


def broken(mutate) -> dict:
    data = copy.deepcopy(default_spec())
    mutate(data)
    return data


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.pop("ociVersion"), "ociVersion: is required"),
    (lambda d: d.update(ociVersion="2.0.0"), "ociVersion: '2.0.0' is not a 1.x version"),
    (lambda d: d.pop("root"), "root: is required"),
    (lambda d: d["root"].update(path=3), "root.path: must be a string"),
    (lambda d: d["process"].update(args=[1]), "process.args[0]: must be a string"),
    (lambda d: d["process"].update(args=[]), "process.args: must name the program to run"),
    (lambda d: d["process"].update(cwd="relative"), "process.cwd: must be an absolute path"),
    (lambda d: d["process"].update(env=["NOEQUALS"]), "process.env[0]: 'NOEQUALS' is not KEY=VALUE"),
    (lambda d: d["process"]["user"].update(uid=-1), "process.user.uid: -1 is out of range"),
    (lambda d: d["process"]["user"].update(uid="0"), "process.user.uid: must be an integer"),
    (lambda d: d["process"].update(rlimits=[{"type": "NOFILE", "soft": 1, "hard": 1}]),
     "process.rlimits[0].type: unknown rlimit 'NOFILE'"),
    (lambda d: d["process"].update(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1}]),
     "process.rlimits[0].hard: is required"),
    (lambda d: d["process"].update(terminal="yes"), "process.terminal: must be true or false"),
    (lambda d: d["mounts"].append({"type": "tmpfs"}), "mounts[6].destination: is required"),
    (lambda d: d["mounts"][0].update(options="ro"), "mounts[0].options: must be an array of strings"),
    (lambda d: d["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type: unknown namespace"),
    (lambda d: d["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type: namespace 'pid' is listed twice"),
    (lambda d: d["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings: a new user namespace needs"),
    (lambda d: d["linux"].update(devices=[{"type": "x", "path": "/dev/x"}]), "linux.devices[0].type: must be c, b, u or p"),
    (lambda d: d["linux"].update(devices=[{"type": "c", "path": "/dev/x", "major": 1}]), "linux.devices[0].minor: is required"),
    (lambda d: d["linux"].update(rootfsPropagation="sideways"), "linux.rootfsPropagation: unknown propagation"),
    (lambda d: d.update(hooks={"prestart": [{"path": "rel"}]}), "hooks.prestart[0].path: must be an absolute path"),
    (lambda d: d.update(hooks={"poststop": [{"path": "/x", "timeout": 0}]}), "hooks.poststop[0].timeout: must be greater than zero"),
    (lambda d: d["linux"]["namespaces"].remove({"type": "uts"}), "hostname: setting the hostname needs a uts namespace"),
    (lambda d: d.update(annotations={"a": 1}), "annotations.a: must be a string"),
    (lambda d: d["linux"].update(personality={"domain": "PDP11"}), "linux.personality.domain: must be LINUX or LINUX32"),
])
def test_errors_name_the_json_path(mutate, message):
    with pytest.raises(SpecError) as e:
        Spec(broken(mutate), "/b")
    assert str(e.value).startswith(message), str(e.value)


def test_load_errors(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load(str(tmp_path))
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(SpecError, match="must be an object"):
        load(str(tmp_path))
