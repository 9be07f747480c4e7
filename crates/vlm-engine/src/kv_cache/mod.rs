//! The paged KV cache: a pool of fixed-size blocks sized from a memory budget, per-sequence
//! block tables, content hashes of full blocks for prefix caching, and the [`KvCache`](vlm_models::decoder::KvCache) view the decoder writes
//! through.

mod block_hash;
mod block_pool;
mod paged;

pub use block_hash::{BlockHash, BlockHasher, SeqTokens};
pub use block_pool::BlockPool;
pub use paged::{KvLayout, PagedKvCache};
