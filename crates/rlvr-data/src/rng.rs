//! A small seeded PRNG (SplitMix64) and Fisher–Yates permutations, written here so that
//! orders stay the same across dependency upgrades: a seed names the same order forever.

/// SplitMix64 (Steele, Lea & Flood 2014): 64 bits of state, full period, good mixing.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of 64 bits.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A generator whose first output is `mix64(seed + GAMMA)`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator for one of many independent streams of a seed (e.g. one per epoch).
    pub fn for_stream(seed: u64, stream: u64) -> SplitMix64 {
        SplitMix64::new(mix64(seed) ^ mix64(stream.wrapping_add(GAMMA).rotate_left(17)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// Uniform in `0..n` without modulo bias (rejection sampling); `n` must be > 0, and 0 is
    /// returned for `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Largest multiple of n that fits, minus one: accept x <= limit.
        let limit = u64::MAX - (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if x <= limit {
                return x % n;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates, from the back).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A permutation of `0..n` for `(seed, stream)`.
pub fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix64::for_stream(seed, stream).shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Published SplitMix64 outputs for seed 1234567 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn below_is_in_range_and_covers() {
        let mut r = SplitMix64::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[r.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
        assert_eq!(r.below(1), 0);
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn permutation_is_a_permutation_and_stable() {
        let p = permutation(1000, 42, 3);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, 42, 3));
        assert_ne!(p, permutation(1000, 42, 4));
        assert_ne!(p, permutation(1000, 43, 3));
        assert!(permutation(0, 1, 1).is_empty());
        assert_eq!(permutation(1, 1, 1), [0]);
    }
}
