//! Python's `random` module, as far as lmms-eval's MMMU parser uses it: `random.seed(0)`
//! (MT19937 seeded through `init_by_array`) and `random.choice` (`_randbelow` by rejection
//! over `getrandbits`). The multiple-choice parser falls back to a random option when it
//! finds none; reproducing that stream draw for draw makes our scores identical.

const N: usize = 624;
const M: usize = 397;

pub struct PythonRandom {
    state: [u32; N],
    index: usize,
}

impl PythonRandom {
    /// `random.seed(n)` for a non-negative integer `n`.
    pub fn seed(n: u64) -> Self {
        // CPython splits abs(n) into 32-bit words, least significant first, at least one.
        let mut key = vec![n as u32];
        if n >> 32 != 0 {
            key.push((n >> 32) as u32);
        }
        let mut r = Self {
            state: [0; N],
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.state[0] = s;
        for i in 1..N {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.state[i - 1];
            self.state[i] = (self.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.state[i - 1];
            self.state[i] = (self.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
        }
        self.state[0] = 0x8000_0000;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % N] & 0x7fff_ffff);
                let mut v = self.state[(k + M) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.state[k] = v;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `0 < k <= 32`.
    fn getrandbits(&mut self, k: u32) -> u32 {
        self.next_u32() >> (32 - k)
    }

    /// `_randbelow(n)`: uniform in `0..n` by rejection.
    pub fn randbelow(&mut self, n: usize) -> usize {
        assert!(n > 0 && n <= u32::MAX as usize, "randbelow({n})");
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `random.choice(seq)`.
    pub fn choice<'a, T>(&mut self, seq: &'a [T]) -> &'a T {
        &seq[self.randbelow(seq.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_choices_after_seed_0_match_python() {
        // python3 -c "import random; random.seed(0); print([random.choice(range(4)) for _ in range(10)])"
        let mut r = PythonRandom::seed(0);
        let draws: Vec<usize> = (0..10).map(|_| *r.choice(&[0, 1, 2, 3])).collect();
        assert_eq!(draws, vec![3, 3, 0, 2, 3, 3, 2, 3, 2, 1]);
    }

    #[test]
    fn raw_stream_matches_python() {
        // python3 -c "import random; random.seed(0); print([random.getrandbits(32) for _ in range(3)])"
        let mut r = PythonRandom::seed(0);
        let words: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(words, vec![3626764237, 1654615998, 3255389356]);
        // Five options: 3 bits, values 5..7 rejected.
        // python3 -c "import random; random.seed(0); print([random.randrange(5) for _ in range(6)])"
        let mut r = PythonRandom::seed(0);
        let draws: Vec<usize> = (0..6).map(|_| r.randbelow(5)).collect();
        assert_eq!(draws, vec![3, 3, 0, 2, 4, 3]);
    }
}
