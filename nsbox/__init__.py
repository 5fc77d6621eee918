"""nsbox: Linux namespaces, an OCI runtime and a container engine, in Python.

The public API is reached through submodules (``nsbox.namespaces``,
``nsbox.userns``); names are also re-exported here lazily, so that
``import nsbox`` stays cheap for the command-line tool's hot verbs.
"""

TYPE_CHECKING = False  # not typing's: importing typing costs milliseconds

__version__ = "0.1.0"

_EXPORTS = {
    "Namespace": "nsbox.namespaces",
    "NamespaceType": "nsbox.namespaces",
    "namespaces_of": "nsbox.namespaces",
    "unshare": "nsbox.namespaces",
    "setns": "nsbox.namespaces",
    "enter": "nsbox.namespaces",
    "IdMap": "nsbox.userns",
    "parse_id_map": "nsbox.userns",
    "write_id_maps": "nsbox.userns",
    "NsboxError": "nsbox.errors",
    "NamespaceError": "nsbox.errors",
    "ProcessNotFound": "nsbox.errors",
}

if TYPE_CHECKING:
    from nsbox.errors import NamespaceError, NsboxError, ProcessNotFound
    from nsbox.namespaces import Namespace, NamespaceType, enter, namespaces_of, setns, unshare
    from nsbox.userns import IdMap, parse_id_map, write_id_maps


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nsbox' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
