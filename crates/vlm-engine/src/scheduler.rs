//! Continuous batching: which sequences compute which tokens in the next step.

use std::collections::VecDeque;
use std::ops::Range;

use crate::kv_cache::BlockPool;
use crate::sequence::Sequence;

/// Sequences waiting for admission (FCFS; preempted ones go back to the front) and running.
/// The scheduler alone changes its queues; the worker reads them and asks for changes.
pub(crate) struct Scheduler {
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
    max_num_seqs: usize,
    max_batched_tokens: usize,
}

/// One sequence's share of a step: `running[seq]` computes its tokens `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub seq: usize,
    pub range: Range<usize>,
}

impl Scheduler {
    pub fn new(max_num_seqs: usize, max_batched_tokens: usize) -> Self {
        Self {
            waiting: VecDeque::new(),
            running: Vec::new(),
            max_num_seqs,
            max_batched_tokens,
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
    /// Returns the plan and the number of preemptions.
    pub fn schedule(&mut self, pool: &mut BlockPool) -> (Vec<Planned>, usize) {
        let mut budget = self.max_batched_tokens;
        let mut plan: Vec<(usize, Range<usize>)> = Vec::new();
        let mut preempted = 0;
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
        // Admit from the front of the queue while there is room; never skip the head.
        while budget > 0 && self.running.len() < self.max_num_seqs {
            let Some(seq) = self.waiting.front_mut() else {
                break;
            };
            let chunk = seq.pending().min(budget);
            if !pool.grow(&mut seq.blocks, seq.computed + chunk) {
                break;
            }
            let seq = self.waiting.pop_front().expect("front exists");
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
        (planned, preempted)
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
        self.waiting.push_front(seq);
        refund
    }
}
