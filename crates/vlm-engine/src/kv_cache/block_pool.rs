//! The KV blocks and who holds them: reference counts, a free list, and (with prefix
//! caching) an index of full blocks by content hash whose unreferenced members are evicted
//! least recently used first.

use std::collections::{BTreeMap, HashMap};

use super::block_hash::BlockHash;

/// Allocator of KV blocks. Block `b` holds token slots `b * block_size .. (b + 1) *
/// block_size` in every layer's storage. A block is either held (by one or more
/// sequences), cached (unreferenced but indexed by its content, reusable until evicted) or
/// free.
#[derive(Debug)]
pub struct BlockPool {
    block_size: usize,
    total: usize,
    /// Unreferenced blocks holding nothing reusable.
    free: Vec<u32>,
    refs: Vec<u32>,
    /// Whether full blocks are indexed for reuse.
    caching: bool,
    /// The content hash a block is indexed under, if any.
    hash_of: Vec<Option<BlockHash>>,
    cached: HashMap<BlockHash, u32>,
    /// Indexed blocks no sequence holds, by when they were released (oldest evicted first).
    evictable: BTreeMap<u64, u32>,
    released_at: Vec<u64>,
    clock: u64,
}

impl BlockPool {
    pub fn new(total: usize, block_size: usize, caching: bool) -> Self {
        // Popping from the end hands out low block ids first.
        let free = (0..total as u32).rev().collect();
        Self {
            block_size,
            total,
            free,
            refs: vec![0; total],
            caching,
            hash_of: vec![None; total],
            cached: HashMap::new(),
            evictable: BTreeMap::new(),
            released_at: vec![0; total],
            clock: 0,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Blocks a sequence can be given now (free or evictable).
    pub fn free_count(&self) -> usize {
        self.free.len() + self.evictable.len()
    }

    /// Blocks held by sequences.
    pub fn used(&self) -> usize {
        self.total - self.free_count()
    }

    /// Whether full blocks are indexed for reuse (prefix caching).
    pub fn caching(&self) -> bool {
        self.caching
    }

    /// Unreferenced blocks kept for their content.
    pub fn cached_count(&self) -> usize {
        self.evictable.len()
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.block_size)
    }

    /// Grows `table` to hold `tokens` tokens; all or nothing. Free blocks go first, then
    /// the least recently released cached ones.
    pub fn grow(&mut self, table: &mut Vec<u32>, tokens: usize) -> bool {
        let needed = self.blocks_for(tokens).saturating_sub(table.len());
        if needed > self.free_count() {
            return false;
        }
        for _ in 0..needed {
            let block = match self.free.pop() {
                Some(b) => b,
                None => self.evict_oldest().expect("counted above"),
            };
            self.refs[block as usize] = 1;
            table.push(block);
        }
        true
    }

    fn evict_oldest(&mut self) -> Option<u32> {
        let (_, block) = self.evictable.pop_first()?;
        if let Some(hash) = self.hash_of[block as usize].take() {
            self.cached.remove(&hash);
        }
        Some(block)
    }

    /// Drops `table`'s hold on each of its blocks and empties it. A block nobody holds any
    /// more is kept for reuse if it is indexed, freed otherwise. Blocks are released last
    /// first, so a prefix's tail is evicted before its head.
    pub fn release(&mut self, table: &mut Vec<u32>) {
        for block in table.drain(..).rev() {
            let b = block as usize;
            self.refs[b] = self.refs[b].saturating_sub(1);
            if self.refs[b] > 0 {
                continue;
            }
            if self.hash_of[b].is_some() {
                self.clock += 1;
                self.released_at[b] = self.clock;
                self.evictable.insert(self.clock, block);
            } else {
                self.free.push(block);
            }
        }
    }

    /// Appends to `table` the cached blocks of the longest run of `hashes` (from the first)
    /// that is indexed, holding each; returns how many. Nothing when caching is off.
    pub fn take_cached(&mut self, hashes: &[BlockHash], table: &mut Vec<u32>) -> usize {
        if !self.caching {
            return 0;
        }
        let mut taken = 0;
        for hash in hashes {
            let Some(&block) = self.cached.get(hash) else {
                break;
            };
            let b = block as usize;
            if self.refs[b] == 0 {
                self.evictable.remove(&self.released_at[b]);
            }
            self.refs[b] += 1;
            table.push(block);
            taken += 1;
        }
        taken
    }

    /// Indexes `block`, now full of computed keys and values, under `hash`, unless caching
    /// is off or another block already holds that content.
    pub fn index(&mut self, block: u32, hash: BlockHash) {
        let b = block as usize;
        if !self.caching || b >= self.total || self.hash_of[b].is_some() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.cached.entry(hash) {
            e.insert(block);
            self.hash_of[b] = Some(hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::block_hash::{BlockHasher, SeqTokens};
    use super::*;

    fn hashes(tokens: &[u32], block_size: usize) -> Vec<BlockHash> {
        let mut h = BlockHasher::new();
        let seq = SeqTokens {
            prompt: tokens,
            output: &[],
            images: &[],
            image_token: u32::MAX,
        };
        h.extend(&seq, block_size, tokens.len());
        h.hashes().to_vec()
    }

    #[test]
    fn grows_all_or_nothing_and_releases() {
        let mut pool = BlockPool::new(4, 16, true);
        let mut a = Vec::new();
        assert!(pool.grow(&mut a, 17));
        assert_eq!(a, vec![0, 1]);
        assert!(pool.grow(&mut a, 32), "already enough");
        assert_eq!(a.len(), 2);
        let mut b = Vec::new();
        assert!(!pool.grow(&mut b, 3 * 16), "needs 3 of the 2 left");
        assert!(b.is_empty() && pool.free_count() == 2);
        pool.release(&mut a);
        assert!(a.is_empty());
        assert_eq!(pool.free_count(), 4);
        assert_eq!(pool.blocks_for(0), 0);
    }

    #[test]
    fn indexed_blocks_are_shared_counted_and_evicted_oldest_first() {
        let mut pool = BlockPool::new(4, 2, true);
        let h = hashes(&[1, 2, 3, 4, 5, 6], 2);
        let mut a = Vec::new();
        assert!(pool.grow(&mut a, 6));
        for (&block, &hash) in a.iter().zip(&h) {
            pool.index(block, hash);
        }
        // A second holder of the first two blocks.
        let mut b = Vec::new();
        assert_eq!(pool.take_cached(&h[..2], &mut b), 2);
        assert_eq!(b, a[..2]);
        pool.release(&mut a);
        assert_eq!(pool.used(), 2, "b still holds two");
        assert_eq!(pool.cached_count(), 1, "the third is kept for reuse");
        pool.release(&mut b);
        assert_eq!((pool.used(), pool.cached_count()), (0, 3));
        // Taking from the index again holds the blocks; missing hashes stop the run.
        let other = hashes(&[1, 2, 9, 9], 2);
        let mut c = Vec::new();
        assert_eq!(pool.take_cached(&other, &mut c), 1);
        pool.release(&mut c);
        // Four blocks wanted: the free one, then the oldest released (the tail first).
        let mut d = Vec::new();
        assert!(pool.grow(&mut d, 4));
        assert_eq!(pool.cached_count(), 2);
        let mut e = Vec::new();
        assert_eq!(
            pool.take_cached(&h, &mut e),
            2,
            "the third block was evicted"
        );
        assert!(!pool.grow(&mut d, 8), "two held by e, two by d");
    }

    #[test]
    fn nothing_is_reused_with_caching_off() {
        let mut pool = BlockPool::new(2, 2, false);
        let h = hashes(&[1, 2], 2);
        let mut a = Vec::new();
        assert!(pool.grow(&mut a, 2));
        pool.index(a[0], h[0]);
        pool.release(&mut a);
        assert_eq!(pool.take_cached(&h, &mut a), 0);
        assert_eq!((pool.free_count(), pool.cached_count()), (2, 0));
    }
}
