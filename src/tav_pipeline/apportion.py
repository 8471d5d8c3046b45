"""Hamilton's largest-remainder apportionment, the one rounding both the sampler's category quotas
and the dataset's split sizes use."""

from __future__ import annotations

from collections.abc import Sequence


def largest_remainder(n: int, weights: Sequence[int]) -> list[int]:
    """``n`` seats shared in proportion to ``weights``: each gets ``floor(n * w / W)``, and the seats
    left go one each to the largest remainders ``n * w mod W`` (exact integers), ties to the earlier
    weight. Every share is within one seat of its quota. All zeros when ``n <= 0`` or ``W == 0``."""
    total = sum(weights)
    if total == 0 or n <= 0:
        return [0] * len(weights)
    counts = [n * w // total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(n * weights[i] % total), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts
