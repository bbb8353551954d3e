"""The block manager: fixed-size KV-cache blocks, reference counts, and prefix reuse by content hash.

Pure Python on plain values (no torch): it decides which cache block holds which tokens; the model
runner turns its block tables into slot numbers. A sequence owns a block table (list of block ids);
token t lives in block_table[t // block_size] at offset t % block_size.

Prefix reuse: every *full* block gets a hash chained over all tokens before it,
hash_i = hash((hash_{i-1}, tokens of block i)), so two sequences share block i only when their whole
prefixes agree. A block whose last reference is dropped goes to the free list but keeps its hash, so a
later prompt with the same prefix (a system prompt, an earlier turn) finds it again until the block is
reused for new tokens (least recently freed first; a sequence's tail blocks are freed before its head,
so shared prefixes live longest).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, Sequence


class BlockTableOwner(Protocol):
    """What the block manager needs of a sequence."""

    block_table: list[int]
    block_hashes: list[int]  # hashes of the full blocks at the head of block_table, in order

    @property
    def all_token_ids(self) -> Sequence[int]: ...


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    content_hash: int | None = None
    token_ids: tuple[int, ...] = field(default=())  # the tokens behind content_hash (guards against collisions)


class NoFreeBlocksError(RuntimeError):
    pass


def chain_hash(parent_hash: int | None, token_ids: tuple[int, ...]) -> int:
    return hash((parent_hash, token_ids))


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, *, enable_prefix_caching: bool = True) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"need num_blocks >= 1 and block_size >= 1, got {num_blocks} and {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self._free: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))  # LRU order
        self._by_hash: dict[int, int] = {}
        self.num_prefix_hit_tokens = 0  # tokens whose KV came from the prefix cache (for metrics)

    # --- queries -----------------------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def blocks_for(self, num_tokens: int) -> int:
        return (num_tokens + self.block_size - 1) // self.block_size

    def num_new_blocks(self, seq: BlockTableOwner, num_total_tokens: int) -> int:
        """Blocks to add so that seq can hold num_total_tokens tokens."""
        return max(0, self.blocks_for(num_total_tokens) - len(seq.block_table))

    def can_hold(self, seq: BlockTableOwner, num_total_tokens: int) -> bool:
        return self.num_new_blocks(seq, num_total_tokens) <= self.num_free_blocks

    # --- prefix reuse --------------------------------------------------------------------------------
    def match_prefix(self, seq: BlockTableOwner) -> int:
        """Attach cached blocks for the longest cached prefix of a sequence with an empty block table.

        Returns the number of tokens whose KV is already in the cache. The block holding the sequence's
        last token is never taken from the cache, so at least one token is always computed (its logits
        are needed to sample).
        """
        if seq.block_table:
            raise ValueError("match_prefix needs a sequence without blocks")
        if not self.enable_prefix_caching:
            return 0
        tokens = seq.all_token_ids
        num_full = (len(tokens) - 1) // self.block_size
        parent: int | None = None
        for i in range(num_full):
            chunk = tuple(tokens[i * self.block_size:(i + 1) * self.block_size])
            h = chain_hash(parent, chunk)
            block_id = self._by_hash.get(h)
            if block_id is None or self.blocks[block_id].token_ids != chunk:
                break
            block = self.blocks[block_id]
            if block.ref_count == 0:
                del self._free[block_id]
            block.ref_count += 1
            seq.block_table.append(block_id)
            seq.block_hashes.append(h)
            parent = h
        num_cached = len(seq.block_table) * self.block_size
        self.num_prefix_hit_tokens += num_cached
        return num_cached

    # --- allocation ----------------------------------------------------------------------------------
    def grow(self, seq: BlockTableOwner, num_total_tokens: int) -> None:
        """Add blocks so that seq can hold num_total_tokens tokens; raises NoFreeBlocksError if it cannot."""
        needed = self.num_new_blocks(seq, num_total_tokens)
        if needed > self.num_free_blocks:
            raise NoFreeBlocksError(f"need {needed} blocks, {self.num_free_blocks} free")
        for _ in range(needed):
            block_id, _ = self._free.popitem(last=False)  # least recently freed
            block = self.blocks[block_id]
            if block.content_hash is not None:
                if self._by_hash.get(block.content_hash) == block_id:
                    del self._by_hash[block.content_hash]
                block.content_hash, block.token_ids = None, ()
            block.ref_count = 1
            seq.block_table.append(block_id)

    def commit(self, seq: BlockTableOwner, num_computed_tokens: int) -> None:
        """Register hashes for blocks that became full with computed tokens, so later prompts can share them."""
        if not self.enable_prefix_caching:
            return
        tokens = seq.all_token_ids
        num_full = num_computed_tokens // self.block_size
        while len(seq.block_hashes) < num_full:
            i = len(seq.block_hashes)
            chunk = tuple(tokens[i * self.block_size:(i + 1) * self.block_size])
            parent = seq.block_hashes[-1] if seq.block_hashes else None
            h = chain_hash(parent, chunk)
            seq.block_hashes.append(h)
            block = self.blocks[seq.block_table[i]]
            if block.content_hash is None:
                block.content_hash, block.token_ids = h, chunk
                self._by_hash.setdefault(h, block.block_id)

    def free(self, seq: BlockTableOwner) -> None:
        """Drop the sequence's references; blocks nobody uses go to the free list, tail first."""
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count < 0:
                raise RuntimeError(f"block {block_id} freed more often than allocated")
            if block.ref_count == 0:
                self._free[block_id] = None
        seq.block_table.clear()
        seq.block_hashes.clear()

    def check_invariants(self, live: Sequence[BlockTableOwner]) -> None:
        """For tests: reference counts equal the live sequences' references; free blocks are exactly the unused ones."""
        refs = [0] * self.num_blocks
        for seq in live:
            for block_id in seq.block_table:
                refs[block_id] += 1
        for block in self.blocks:
            if block.ref_count != refs[block.block_id]:
                raise AssertionError(f"block {block.block_id}: ref_count {block.ref_count}, referenced "
                                     f"{refs[block.block_id]} times")
            if (block.ref_count == 0) != (block.block_id in self._free):
                raise AssertionError(f"block {block.block_id}: ref_count {block.ref_count} but free={block.block_id in self._free}")
