//! Free-list allocator of KV blocks and the per-sequence block tables it fills.

/// Free-list allocator of KV blocks. Block `b` holds token slots `b * block_size ..
/// (b + 1) * block_size` in every layer's storage.
#[derive(Debug)]
pub struct BlockPool {
    block_size: usize,
    total: usize,
    free: Vec<u32>,
}

impl BlockPool {
    pub fn new(total: usize, block_size: usize) -> Self {
        // Popping from the end hands out low block ids first.
        let free = (0..total as u32).rev().collect();
        Self {
            block_size,
            total,
            free,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    pub fn used(&self) -> usize {
        self.total - self.free.len()
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.block_size)
    }

    /// Grows `table` to hold `tokens` tokens; all or nothing.
    pub fn grow(&mut self, table: &mut Vec<u32>, tokens: usize) -> bool {
        let needed = self.blocks_for(tokens).saturating_sub(table.len());
        if needed > self.free.len() {
            return false;
        }
        for _ in 0..needed {
            table.push(self.free.pop().expect("counted above"));
        }
        true
    }

    /// Returns every block of `table` to the pool and empties it.
    pub fn release(&mut self, table: &mut Vec<u32>) {
        self.free.append(table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_all_or_nothing_and_releases() {
        let mut pool = BlockPool::new(4, 16);
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
}
