"""A tiny name -> factory registry shared by detectors, strategies, mask types and models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """Register factories under names; create them by name with a helpful error for typos."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, doc: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = factory
            self._docs[name] = doc or (factory.__doc__ or "").strip().split("\n")[0]
            return factory

        return deco

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._items:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._items[name]

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return list(self._items)

    def describe(self) -> dict[str, str]:
        return dict(self._docs)

    def __contains__(self, name: object) -> bool:
        return name in self._items
