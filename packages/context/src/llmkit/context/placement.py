"""U-shaped placement: the best-ranked chunks at the edges of their span of the context, the weakest in the middle.

Models recall what sits at the start and the end of a long context better than the middle
(Liu et al. 2023, "Lost in the Middle"), so rank 1 goes first, rank 2 last, rank 3 second, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def u_shaped_order(count: int) -> list[int]:
    """Rank indices (0 = best) in placement order: 0, 2, 4, ..., 5, 3, 1."""
    front = list(range(0, count, 2))
    back = list(range(1, count, 2))
    return front + back[::-1]


def u_shaped(ranked: Sequence[T]) -> list[T]:
    """`ranked` (best first) rearranged so the best items sit at both edges."""
    return [ranked[i] for i in u_shaped_order(len(ranked))]
