//! Several OpenAI-compatible servers of one model (`--base-url` given more than once):
//! each request goes to the replica with the fewest requests in flight, and a replica that
//! fails (unreachable, timeout, 5xx) is left out for a cooldown while its requests are
//! retried on the others.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone)]
struct Slot {
    outstanding: usize,
    down_until: Option<Instant>,
    /// Requests answered, for the run's description.
    answered: usize,
}

/// The replicas' load and health.
#[derive(Debug)]
pub struct Replicas {
    urls: Vec<String>,
    slots: Mutex<Vec<Slot>>,
    cooldown: Duration,
}

impl Replicas {
    pub fn new(urls: Vec<String>, cooldown: Duration) -> Self {
        let slots = Mutex::new(vec![Slot::default(); urls.len()]);
        Self {
            urls,
            slots,
            cooldown,
        }
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The replica to send to (counted in flight until [`release`](Self::release)): the
    /// least loaded one that is up and not `avoid`; else the least loaded one up; else,
    /// with every replica down, the one that comes back first. Also says whether it is up.
    pub fn acquire(&self, avoid: Option<usize>) -> (usize, bool) {
        let now = Instant::now();
        let mut slots = self.lock();
        let up = |s: &Slot| s.down_until.is_none_or(|t| t <= now);
        let pick = |skip: Option<usize>| {
            (0..slots.len())
                .filter(|&i| Some(i) != skip && up(&slots[i]))
                .min_by_key(|&i| (slots[i].outstanding, slots[i].answered))
        };
        let (chosen, is_up) = match pick(avoid).or_else(|| pick(None)) {
            Some(i) => (i, true),
            None => {
                let first_back = (0..slots.len())
                    .min_by_key(|&i| slots[i].down_until)
                    .unwrap_or(0);
                (first_back, false)
            }
        };
        if let Some(slot) = slots.get_mut(chosen) {
            slot.outstanding += 1;
        }
        (chosen, is_up)
    }

    /// Ends a request on replica `i`; a failed one takes the replica out for the cooldown.
    pub fn release(&self, i: usize, failed: bool) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(i) {
            slot.outstanding = slot.outstanding.saturating_sub(1);
            if failed {
                slot.down_until = Some(Instant::now() + self.cooldown);
            } else {
                slot.down_until = None;
                slot.answered += 1;
            }
        }
    }

    /// Takes replica `i` out for the cooldown (unreachable when the run starts).
    pub fn mark_down(&self, i: usize) {
        if let Some(slot) = self.lock().get_mut(i) {
            slot.down_until = Some(Instant::now() + self.cooldown);
        }
    }

    /// How many requests each replica answered.
    pub fn answered(&self) -> Vec<usize> {
        self.lock().iter().map(|s| s.answered).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_outstanding_and_failed_replicas_sit_out() {
        let r = Replicas::new(vec!["a".into(), "b".into()], Duration::from_secs(60));
        assert_eq!(r.acquire(None), (0, true));
        assert_eq!(r.acquire(None), (1, true));
        assert_eq!(r.acquire(None), (0, true));
        r.release(0, false);
        r.release(0, false);
        // Replica 1 fails: the retry goes elsewhere, and so does everything after it.
        r.release(1, true);
        assert_eq!(r.acquire(Some(1)), (0, true));
        assert_eq!(r.acquire(None), (0, true));
        r.release(0, false);
        r.release(0, false);
        // Everything down: the one back first, said to be down (the caller backs off).
        r.mark_down(0);
        assert!(!r.acquire(None).1);
        assert_eq!(r.answered(), [4, 0]);
    }
}
