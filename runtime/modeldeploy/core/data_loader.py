"""BaseDataLoader: reads samples in the project's on-disk format.

A sample is a plain dict: the raw inputs the pipeline's preprocess needs plus the ground
truth the evaluator needs. Loaders validate what they read and raise ``DataError`` naming
the file and the expected format.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any


class BaseDataLoader(ABC):
    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load_sample(self, index: int) -> dict[str, Any]: ...

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self.load_sample(i)

    def sample_indices(self, limit: int | None) -> list[int]:
        n = len(self)
        return list(range(n if limit is None or limit < 0 else min(n, limit)))
