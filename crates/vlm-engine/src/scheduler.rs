//! Continuous batching: which sequences compute which tokens in the next step.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;

use crate::kv_cache::{BlockHash, BlockPool, SeqTokens};
use crate::sequence::{Request, Sequence};

/// Sequences waiting for admission (FCFS; preempted ones go back to the front) and running.
/// The scheduler alone changes its queues; the worker reads them and asks for changes.
pub(crate) struct Scheduler {
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
    max_num_seqs: usize,
    max_batched_tokens: usize,
    /// The model's image placeholder token, which block hashes tie to image content.
    image_token: u32,
}

/// The next step's work, and what planning it did.
#[derive(Debug, Default)]
pub(crate) struct StepPlan {
    pub planned: Vec<Planned>,
    pub preempted: usize,
    /// Tokens of the sequences admitted, and how many of them came from the prefix cache.
    pub prefix_queries: usize,
    pub prefix_hits: usize,
}

/// One sequence's share of a step: `running[seq]` computes its tokens `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub seq: usize,
    pub range: Range<usize>,
}

impl Scheduler {
    pub fn new(max_num_seqs: usize, max_batched_tokens: usize, image_token: u32) -> Self {
        Self {
            waiting: VecDeque::new(),
            running: Vec::new(),
            max_num_seqs,
            max_batched_tokens,
            image_token,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Queues new sequences behind those already waiting.
    pub fn submit(&mut self, seqs: Vec<Sequence>) {
        self.waiting.extend(seqs);
    }

    pub fn running(&self) -> &[Sequence] {
        &self.running
    }

    pub fn running_mut(&mut self, index: usize) -> &mut Sequence {
        &mut self.running[index]
    }

    /// Records that `running[index]` now has its first `computed` tokens in the cache, and
    /// indexes each block this filled by content so later sequences can reuse it.
    pub fn advance(&mut self, index: usize, computed: usize, pool: &mut BlockPool) {
        let image_token = self.image_token;
        let seq = &mut self.running[index];
        seq.computed = computed;
        let tokens = seq_tokens(&seq.request, &seq.output, image_token);
        seq.hasher.extend(&tokens, pool.block_size(), computed);
        // The hasher may know blocks further on (hashed at admission to look them up);
        // only those now full of computed keys and values are indexed.
        let full = (computed / pool.block_size())
            .min(seq.hasher.hashes().len())
            .min(seq.blocks.len());
        for i in seq.indexed..full {
            pool.index(seq.blocks[i], seq.hasher.hashes()[i]);
        }
        seq.indexed = seq.indexed.max(full);
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Ids of the requests with a sequence running now.
    pub fn running_requests(&self) -> Vec<u64> {
        self.running.iter().map(|s| s.request.id).collect()
    }

    /// Whether any sequence of `request` is still running or waiting.
    pub fn has_request(&self, request: u64) -> bool {
        self.running
            .iter()
            .chain(&self.waiting)
            .any(|s| s.request.id == request)
    }

    /// Takes the finished `running[index]`s out (in any order), each with the index it had;
    /// the caller retires them.
    pub fn finish(&mut self, mut indices: Vec<usize>) -> Vec<(usize, Sequence)> {
        indices.sort_unstable();
        indices.dedup();
        indices
            .into_iter()
            .rev()
            .map(|i| (i, self.running.remove(i)))
            .collect()
    }

    /// Takes every running and waiting sequence that `matches` out; the caller retires them.
    pub fn remove_where(&mut self, matches: impl Fn(&Sequence) -> bool) -> Vec<Sequence> {
        let mut removed = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            if matches(&self.running[i]) {
                removed.push(self.running.remove(i));
            } else {
                i += 1;
            }
        }
        let (keep, drop): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|s| !matches(s));
        self.waiting = keep.into();
        removed.extend(drop);
        removed
    }

    /// Plans the next step: every decode first, then prefill chunks, then newly admitted
    /// sequences, within the token budget. A running sequence that cannot get a block
    /// preempts the newest running ones (their blocks are freed and they recompute later).
    /// An admitted sequence first takes the cached blocks of its longest indexed prefix
    /// (never its last token, whose logits it needs) and computes only the rest.
    pub fn schedule(&mut self, pool: &mut BlockPool) -> StepPlan {
        let mut budget = self.max_batched_tokens;
        let mut plan: Vec<(usize, Range<usize>)> = Vec::new();
        let mut preempted = 0;
        let (mut prefix_queries, mut prefix_hits) = (0, 0);
        // Decodes (one pending token) first, then longer work, each in arrival order.
        for decode_pass in [true, false] {
            let mut i = 0;
            while i < self.running.len() {
                let seq = &self.running[i];
                let pending = seq.pending();
                if (pending == 1) != decode_pass
                    || budget == 0
                    || plan.iter().any(|(s, _)| *s == seq.id)
                {
                    i += 1;
                    continue;
                }
                let chunk = pending.min(budget);
                let target = seq.computed + chunk;
                let mut fits = pool.grow(&mut self.running[i].blocks, target);
                while !fits {
                    let victim = self.running.len() - 1;
                    budget += self.preempt(victim, pool, &mut plan);
                    preempted += 1;
                    if victim == i {
                        break;
                    }
                    fits = pool.grow(&mut self.running[i].blocks, target);
                }
                if !fits {
                    // It preempted itself; nothing later in `running` remains.
                    break;
                }
                let seq = &self.running[i];
                plan.push((seq.id, seq.computed..target));
                budget -= chunk;
                i += 1;
            }
        }
        // Admit in queue order while there is room. A sequence that does not fit stops
        // admission (the head is never overtaken for lack of blocks); one whose next block
        // a running sequence is computing right now waits for it (a step or a few) and
        // then reuses it, instead of computing the same prefix alongside.
        let mut computing: HashSet<BlockHash> = HashSet::new();
        if pool.caching() {
            for seq in &self.running {
                computing.extend(seq.hasher.hashes().iter().skip(seq.indexed).copied());
            }
        }
        let mut w = 0;
        while budget > 0 && self.running.len() < self.max_num_seqs && w < self.waiting.len() {
            let image_token = self.image_token;
            let seq = &mut self.waiting[w];
            let reused = take_cached_prefix(seq, pool, image_token);
            let next_block = seq.hasher.hashes().get(seq.indexed);
            if next_block.is_some_and(|h| computing.contains(h)) {
                give_back_cached_prefix(seq, pool);
                w += 1;
                continue;
            }
            let chunk = seq.pending().min(budget);
            if !pool.grow(&mut seq.blocks, seq.computed + chunk) {
                // Not yet: hand the cached blocks back until it fits.
                give_back_cached_prefix(seq, pool);
                break;
            }
            prefix_queries += seq.len();
            prefix_hits += reused;
            let seq = self.waiting.remove(w).expect("index checked");
            if pool.caching() {
                computing.extend(seq.hasher.hashes().iter().skip(seq.indexed).copied());
            }
            plan.push((seq.id, seq.computed..seq.computed + chunk));
            budget -= chunk;
            self.running.push(seq);
        }
        let planned = plan
            .into_iter()
            .map(|(id, range)| Planned {
                seq: self
                    .running
                    .iter()
                    .position(|s| s.id == id)
                    .expect("planned sequences run"),
                range,
            })
            .collect();
        StepPlan {
            planned,
            preempted,
            prefix_queries,
            prefix_hits,
        }
    }

    /// Frees `running[index]`'s blocks and sends it back to the front of the queue to
    /// recompute its prompt and output later. Returns the tokens it had been given this step.
    fn preempt(
        &mut self,
        index: usize,
        pool: &mut BlockPool,
        plan: &mut Vec<(usize, Range<usize>)>,
    ) -> usize {
        let mut seq = self.running.remove(index);
        let refund = plan
            .iter()
            .filter(|(id, _)| *id == seq.id)
            .map(|(_, r)| r.len())
            .sum();
        plan.retain(|(id, _)| *id != seq.id);
        pool.release(&mut seq.blocks);
        seq.computed = 0;
        seq.indexed = 0;
        self.waiting.push_front(seq);
        refund
    }
}

/// Undoes [`take_cached_prefix`] for a sequence that stays waiting.
fn give_back_cached_prefix(seq: &mut Sequence, pool: &mut BlockPool) {
    pool.release(&mut seq.blocks);
    seq.computed = 0;
    seq.indexed = 0;
}

/// Gives a sequence about to be admitted (holding no blocks) the cached blocks of its
/// longest indexed prefix, short of its last token; returns the tokens they hold.
fn take_cached_prefix(seq: &mut Sequence, pool: &mut BlockPool, image_token: u32) -> usize {
    if !seq.blocks.is_empty() || seq.computed > 0 {
        return 0;
    }
    let len = seq.len();
    let tokens = seq_tokens(&seq.request, &seq.output, image_token);
    seq.hasher
        .extend(&tokens, pool.block_size(), len.saturating_sub(1));
    let usable = len.saturating_sub(1) / pool.block_size();
    let hashes = &seq.hasher.hashes()[..usable.min(seq.hasher.hashes().len())];
    let taken = pool.take_cached(hashes, &mut seq.blocks);
    seq.indexed = taken;
    seq.computed = taken * pool.block_size();
    seq.computed
}

/// A sequence's tokens as the block hasher reads them (taken field by field, so its
/// hasher can be borrowed mutably alongside).
fn seq_tokens<'a>(request: &'a Request, output: &'a [u32], image_token: u32) -> SeqTokens<'a> {
    SeqTokens {
        prompt: &request.prompt.token_ids,
        output,
        images: &request.prompt.images,
        image_token,
    }
}
