"""Chunk sizes shrink as more clients download at once, so the bytes in flight stay flat."""

from __future__ import annotations

from contextlib import ExitStack

from proxy.server.memory import ChunkBudget

MIB = 1024 * 1024


def test_chunks_shrink_as_more_clients_download_at_once() -> None:
    budget = ChunkBudget(budget=16 * MIB, largest=MIB, smallest=256 * 1024)
    sizes = []
    with ExitStack() as stack:
        for _ in range(64):
            sizes.append(stack.enter_context(budget.chunk()))
        assert budget.active == 64
    assert budget.active == 0
    assert sizes[:16] == [MIB] * 16  # all fit: 1 MiB each
    assert sizes[31] == 16 * MIB // 32
    assert sizes[-1] == 256 * 1024  # never below the smallest
    assert sizes == sorted(sizes, reverse=True)
