//! Python's `random.seed(n)` and `random.shuffle`, bit for bit: the Mersenne Twister
//! (MT19937) seeded as CPython seeds it from an integer, and the shuffle CPython runs on it.
//!
//! Why: the grokking paper's code splits its pairs with `random.seed(0); random.shuffle(pairs)`.
//! Which pairs are trained on decides much of the run (its key frequencies among them), so
//! a faithful reproduction needs that exact split, not merely one of the same size.

/// CPython's `random.Random` state: MT19937 and its position in the current block.
pub(crate) struct PythonRandom {
    state: [u32; N],
    index: usize,
}

const N: usize = 624;
const M: usize = 397;

impl PythonRandom {
    /// `random.seed(seed)` for a non-negative integer: CPython keys the generator with the
    /// seed's 32-bit words, least significant first (one zero word for 0).
    pub(crate) fn new(seed: u64) -> Self {
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        let mut rng = Self::from_u32(19_650_218);
        rng.mix_in_key(&key);
        rng
    }

    /// MT19937's `init_genrand`.
    fn from_u32(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: N }
    }

    /// MT19937's `init_by_array`.
    fn mix_in_key(&mut self, key: &[u32]) {
        let mt = &mut self.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1];
            mt[i] = (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1];
            mt[i] =
                (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
    }

    /// The next 32-bit output (`genrand_uint32`).
    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        let mt = &mut self.state;
        for i in 0..N {
            let y = (mt[i] & 0x8000_0000) | (mt[(i + 1) % N] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            mt[i] = mt[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// `random._randbelow(n)` for `0 < n < 2³²`: `n.bit_length()` bits per draw, redrawn
    /// until below `n`.
    fn below(&mut self, n: usize) -> usize {
        let bits = usize::BITS - n.leading_zeros();
        loop {
            let r = (self.next_u32() >> (32 - bits)) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// `random.shuffle(items)`: Fisher–Yates from the end.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython() {
        // Python 3.11: `random.seed(0); [random.getrandbits(32) for _ in range(3)]`.
        let mut rng = PythonRandom::new(0);
        let first: Vec<u32> = (0..3).map(|_| rng.next_u32()).collect();
        assert_eq!(first, [3_626_764_237, 1_654_615_998, 3_255_389_356]);
        // `x = list(range(10)); random.seed(0); random.shuffle(x)`.
        let mut x: Vec<u32> = (0..10).collect();
        PythonRandom::new(0).shuffle(&mut x);
        assert_eq!(x, [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]);
        // A seed past 32 bits is keyed with two words: `random.seed(2**40 + 5);
        // random.getrandbits(32)`.
        let mut rng = PythonRandom::new((1 << 40) + 5);
        assert_eq!(rng.next_u32(), 2_166_296_868);
    }
}
