"""Reading a decoded JSON document field by field, every problem named by
its JSON path (``process.user.uid: -1 is out of range (0..4294967294)``).

config.json (nsbox.oci.spec) and linux.resources (nsbox.cgroups.resources)
are read the same way and differ only in the error they raise: a subclass
says which, in ``fail``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


class JsonObject:
    """A JSON object being read, with the path that reached it."""

    __slots__ = ("data", "path")

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            self.fail(path, "must be an object")
        self.data: dict = data  # type: ignore[type-arg]
        self.path = path

    @staticmethod
    def fail(path: str, problem: str) -> NoReturn:
        raise ValueError(f"{path}: {problem}" if path else problem)

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def str(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(self.at(key), "is required")
            return default
        if not isinstance(value, str):
            self.fail(self.at(key), "must be a string")
        return value

    def int(self, key: str, default: int | None = None, required: bool = False,
            minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(self.at(key), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(self.at(key), "must be an integer")
        if minimum is not None and value < minimum or maximum is not None and value > maximum:
            bounds = f"{'' if minimum is None else minimum}..{'' if maximum is None else maximum}"
            self.fail(self.at(key), f"{value} is out of range ({bounds})")
        return value

    def bool(self, key: str, default: bool | None = False) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(self.at(key), "must be true or false")
        return value

    def strs(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(self.at(key), "must be an array of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{self.at(key)}[{i}]", "must be a string")
        return list(value)

    def str_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(self.at(key), "must be an object of strings")
        for k, v in value.items():
            if not isinstance(v, str):
                self.fail(f"{self.at(key)}.{k}", "must be a string")
        return dict(value)

    def obj(self, key: str):  # type: ignore[no-untyped-def]  # -> the same subclass, or None
        value = self.data.get(key)
        return None if value is None else type(self)(value, self.at(key))

    def objs(self, key: str) -> list:  # type: ignore[type-arg]
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(self.at(key), "must be an array")
        return [type(self)(item, f"{self.at(key)}[{i}]") for i, item in enumerate(value)]
