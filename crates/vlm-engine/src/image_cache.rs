//! Vision features of recently seen images, by content and preprocessing key, so a repeated image is encoded once.

use std::collections::HashMap;

use candle_core::Tensor;

/// Vision features by image content key, least recently used evicted first: the two MME
/// questions about one image, or n completions of one prompt, encode it once.
pub(crate) struct ImageCache {
    capacity: usize,
    clock: u64,
    entries: HashMap<[u8; 32], (Tensor, u64)>,
}

impl ImageCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: 0,
            entries: HashMap::new(),
        }
    }

    pub fn get(&mut self, key: &[u8; 32]) -> Option<Tensor> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(t, used)| {
            *used = clock;
            t.clone()
        })
    }

    pub fn insert(&mut self, key: [u8; 32], features: Tensor) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        self.entries.insert(key, (features, self.clock));
        while self.entries.len() > self.capacity {
            let oldest = *self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .expect("non-empty")
                .0;
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let t = Tensor::zeros(1, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let mut c = ImageCache::new(2);
        c.insert([1; 32], t.clone());
        c.insert([2; 32], t.clone());
        assert!(c.get(&[1; 32]).is_some());
        c.insert([3; 32], t);
        assert!(c.get(&[2; 32]).is_none(), "2 was least recently used");
        assert!(c.get(&[1; 32]).is_some() && c.get(&[3; 32]).is_some());
    }
}
