//! Engine counters and latency histograms, as plain data for `/metrics`.

use std::time::Duration;

/// A cumulative histogram with fixed upper bounds (seconds), Prometheus-style.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub bounds: Vec<f64>,
    /// `counts[i]`: observations <= `bounds[i]` (cumulative); the last entry counts all.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if s <= *bound {
                *count += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }
}

/// vLLM's buckets for time to first token and inter-token latency.
const TTFT_BOUNDS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];
const ITL_BOUNDS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// A snapshot of the engine's state and counters.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
    pub running: usize,
    pub waiting: usize,
    pub kv_blocks_used: usize,
    pub kv_blocks_total: usize,
    /// Unreferenced blocks kept for their content (reusable by the prefix cache).
    pub kv_blocks_cached: usize,
    pub block_size: usize,
    pub preemptions: u64,
    /// Prompt tokens run through the model (those reused from the prefix cache are not).
    pub prompt_tokens: u64,
    /// Tokens of admitted sequences looked up in the prefix cache, and those found (vLLM's
    /// `prefix_cache_queries` / `prefix_cache_hits`).
    pub prefix_cache_queries: u64,
    pub prefix_cache_hits: u64,
    pub generation_tokens: u64,
    pub finished_requests: u64,
    pub aborted_requests: u64,
    pub image_cache_hits: u64,
    pub image_cache_misses: u64,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
}

impl Default for EngineStats {
    fn default() -> Self {
        Self {
            running: 0,
            waiting: 0,
            kv_blocks_used: 0,
            kv_blocks_total: 0,
            kv_blocks_cached: 0,
            block_size: 0,
            preemptions: 0,
            prompt_tokens: 0,
            prefix_cache_queries: 0,
            prefix_cache_hits: 0,
            generation_tokens: 0,
            finished_requests: 0,
            aborted_requests: 0,
            image_cache_hits: 0,
            image_cache_misses: 0,
            time_to_first_token: Histogram::new(&TTFT_BOUNDS),
            inter_token_latency: Histogram::new(&ITL_BOUNDS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        assert_eq!(h.counts, vec![1, 2]);
        assert_eq!(h.count, 3);
        assert!((h.sum - 5.55).abs() < 1e-9);
    }
}
