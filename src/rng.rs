//! Per-environment random streams.
//!
//! xoshiro256++ (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2021) seeded
//! through SplitMix64. Small (four words, so an env's full state pickles), fast, and independent of
//! any thread schedule: each env owns its stream, derived from its seed alone.

/// A xoshiro256++ generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Self { s }
    }

    /// Restores a generator from [`Rng::state`].
    pub fn from_state(s: [u64; 4]) -> Self {
        // The all-zero state is the one fixed point of xoshiro; it can only come from a corrupt pickle.
        if s == [0; 4] {
            return Self::from_seed(0);
        }
        Self { s }
    }

    /// The four state words (for pickling).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal draw: the ziggurat method (Marsaglia & Tsang, "The ziggurat method for
    /// generating random variables", 2000, with Doornik's 128 layers, "An improved ziggurat
    /// method to generate normal random samples", 2005). One 64-bit word gives the layer and a
    /// uniform; 97.2% of draws end there, with no logarithm or cosine (Box–Muller needs both).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let z = Ziggurat::normal();
        let bits = self.next_u64();
        let (i, u) = Self::normal_layer(bits);
        if u.abs() < z.ratio[i] {
            return u * z.x[i];
        }
        self.normal_rest(z, bits)
    }

    /// The layer (low 7 bits) and a uniform in `[-1, 1)` (top 53 bits, independent of the
    /// layer's) of a normal draw's word.
    #[inline]
    fn normal_layer(bits: u64) -> (usize, f64) {
        let u = 2.0 * ((bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)) - 1.0;
        ((bits & 0x7f) as usize, u)
    }

    /// The rest of [`normal`](Self::normal) after its first word, `bits`, missed its layer's
    /// rectangle: the tail, the wedge, or new words (2.8% of draws; kept out of line so that
    /// the common case inlines into the caller).
    #[cold]
    #[inline(never)]
    fn normal_rest(&mut self, z: &NormalZiggurat, mut bits: u64) -> f64 {
        loop {
            let (i, u) = Self::normal_layer(bits);
            if u.abs() < z.ratio[i] {
                return u * z.x[i];
            }
            if i == 0 {
                return self.normal_tail(u < 0.0);
            }
            // The wedge between layer i's rectangle and the curve.
            let x = u * z.x[i];
            let f0 = (-0.5 * (z.x[i] * z.x[i] - x * x)).exp();
            let f1 = (-0.5 * (z.x[i + 1] * z.x[i + 1] - x * x)).exp();
            if f1 + self.uniform() * (f0 - f1) < 1.0 {
                return x;
            }
            bits = self.next_u64();
        }
    }

    /// A draw from the normal tail beyond the base layer's edge (Marsaglia, 1964).
    #[cold]
    fn normal_tail(&mut self, negative: bool) -> f64 {
        let r = NORMAL_R;
        loop {
            // 1 - u lies in (0, 1], so the logarithms are finite.
            let x = (1.0 - self.uniform()).ln() / r;
            let y = (1.0 - self.uniform()).ln();
            if -2.0 * y >= x * x {
                return if negative { x - r } else { r - x };
            }
        }
    }

    /// Exponential draw with the given scale (mean), as numpy's `exponential(scale)`: the
    /// ziggurat method with 256 layers (Marsaglia & Tsang, 2000); 97.8% of draws take one
    /// 64-bit word and no logarithm.
    #[inline]
    pub fn exponential(&mut self, scale: f64) -> f64 {
        let z = Ziggurat::exponential();
        let bits = self.next_u64();
        let (i, u) = Self::exponential_layer(bits);
        if u < z.ratio[i] {
            return scale * (u * z.x[i]);
        }
        scale * self.exponential_rest(z, bits)
    }

    /// The layer (low 8 bits) and a uniform in `[0, 1)` (top 53 bits) of an exponential draw's
    /// word.
    #[inline]
    fn exponential_layer(bits: u64) -> (usize, f64) {
        let u = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        ((bits & 0xff) as usize, u)
    }

    /// The rest of [`exponential`](Self::exponential) (at scale 1) after its first word,
    /// `bits`, missed its layer's rectangle (2.2% of draws; out of line, as `normal_rest`).
    #[cold]
    #[inline(never)]
    fn exponential_rest(&mut self, z: &ExpZiggurat, mut bits: u64) -> f64 {
        loop {
            let (i, u) = Self::exponential_layer(bits);
            let x = u * z.x[i];
            if u < z.ratio[i] {
                return x;
            }
            if i == 0 {
                // Beyond the base layer's edge the exponential starts afresh (no memory).
                return EXP_R - (1.0 - self.uniform()).ln();
            }
            let f1 = (-z.x[i + 1]).exp();
            if f1 + self.uniform() * ((-z.x[i]).exp() - f1) < (-x).exp() {
                return x;
            }
            bits = self.next_u64();
        }
    }

    /// Bernoulli draw with success probability `p`.
    #[inline]
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Uniform integer in `[lo, hi)`; `hi > lo` is the caller's promise.
    #[inline]
    pub fn int_in(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo).max(1) as u64;
        lo + (self.next_u64() % span) as i64
    }
}

/// A seed from the operating system's hash randomisation and the clock, for `reset()` without a seed.
pub fn entropy_seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.finish()
}

/// Edge of the normal ziggurat's base layer (128 layers; Doornik 2005).
const NORMAL_R: f64 = 3.442_619_855_899;
/// Area of each layer of the normal ziggurat, under `exp(-x^2 / 2)`.
const NORMAL_V: f64 = 9.912_563_035_262_17e-3;
/// Edge of the exponential ziggurat's base layer (256 layers; Marsaglia & Tsang 2000).
const EXP_R: f64 = 7.697_117_470_131_05;
/// Area of each layer of the exponential ziggurat, under `exp(-x)`.
const EXP_V: f64 = 3.949_659_822_581_557e-3;

/// The layers of a ziggurat over a decreasing density `f` on `[0, inf)`: `x[i]` is the right
/// edge of layer `i` (`x[0]` the base layer's width as if it were a rectangle of the common
/// area, `x[1] = r`, `x[n] = 0`), `ratio[i] = x[i + 1] / x[i]` the share of layer `i` inside
/// the layer above (accepted at once).
struct Ziggurat<const L: usize> {
    /// `L = n + 1` edges.
    x: [f64; L],
    /// `n` ratios (and a 0 at `n`, never read): fixed-size tables, so that an index masked
    /// below `n` needs no bounds check.
    ratio: [f64; L],
}

/// The normal ziggurat: 128 layers.
type NormalZiggurat = Ziggurat<129>;
/// The exponential ziggurat: 256 layers.
type ExpZiggurat = Ziggurat<257>;

impl<const L: usize> Ziggurat<L> {
    /// Layers of area `v` under `f` with base edge `r`, `f_inv` the inverse of `f`.
    fn build(r: f64, v: f64, f: fn(f64) -> f64, f_inv: fn(f64) -> f64) -> Self {
        let n = L - 1;
        let mut x = [0.0; L];
        x[0] = v / f(r);
        x[1] = r;
        for i in 2..n {
            x[i] = f_inv(v / x[i - 1] + f(x[i - 1]));
        }
        x[n] = 0.0;
        let mut ratio = [0.0; L];
        for i in 0..n {
            ratio[i] = x[i + 1] / x[i];
        }
        Self { x, ratio }
    }

    /// The `n` ratios.
    #[cfg(test)]
    fn ratios(&self) -> &[f64] {
        &self.ratio[..L - 1]
    }
}

impl Ziggurat<129> {
    fn normal() -> &'static Self {
        static Z: std::sync::OnceLock<NormalZiggurat> = std::sync::OnceLock::new();
        Z.get_or_init(|| {
            let f = |x: f64| (-0.5 * x * x).exp();
            let f_inv = |y: f64| (-2.0 * y.ln()).sqrt();
            Self::build(NORMAL_R, NORMAL_V, f, f_inv)
        })
    }
}

impl Ziggurat<257> {
    fn exponential() -> &'static Self {
        static Z: std::sync::OnceLock<ExpZiggurat> = std::sync::OnceLock::new();
        Z.get_or_init(|| {
            let f = |x: f64| (-x).exp();
            let f_inv = |y: f64| -y.ln();
            Self::build(EXP_R, EXP_V, f, f_inv)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_state_round_trips() {
        let mut a = Rng::from_seed(42);
        let mut b = Rng::from_seed(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = Rng::from_state(a.state());
        assert_eq!(a.next_u64(), c.next_u64());
        assert_ne!(Rng::from_seed(1).next_u64(), Rng::from_seed(2).next_u64());
    }

    #[test]
    fn ziggurat_layers_close_at_the_top() {
        // The constants (r, v) must make the n layers stack exactly to f(0) = 1: the top layer,
        // [0, x[n-1]] x [f(x[n-1]), 1], then has the common area v.
        fn check<const L: usize>(z: &Ziggurat<L>, v: f64, f: fn(f64) -> f64) {
            let n = L - 1;
            let top = z.x[n - 1] * (1.0 - f(z.x[n - 1]));
            // Doornik's r and v carry 13 digits: the top layer is off by 1.2e-9 of v, a
            // density error of that order.
            assert!((top - v).abs() < 1e-8 * v, "top layer area {top} vs {v}");
            assert!(z.x.windows(2).all(|w| w[0] > w[1]), "edges decrease");
        }
        check(Ziggurat::normal(), NORMAL_V, |x| (-0.5 * x * x).exp());
        check(Ziggurat::exponential(), EXP_V, |x| (-x).exp());
    }

    /// Kolmogorov–Smirnov distance between `n` draws and the distribution function `cdf`.
    fn ks_distance(mut draws: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
        draws.sort_by(f64::total_cmp);
        let n = draws.len() as f64;
        draws
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let c = cdf(x);
                (c - i as f64 / n).abs().max(((i + 1) as f64 / n - c).abs())
            })
            .fold(0.0, f64::max)
    }

    /// The normal distribution function (Abramowitz & Stegun 7.1.26 erf, error below 1.5e-7).
    fn phi(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let t = 1.0 / (1.0 + 0.327_591_1 * z);
        let poly = t
            * (0.254_829_592
                + t * (-0.284_496_736
                    + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        let erf = 1.0 - poly * (-z * z).exp();
        0.5 * (1.0 + erf.copysign(x))
    }

    #[test]
    fn most_draws_end_in_a_rectangle() {
        // The share of draws accepted at once: the mean of the layers' ratios (the docs quote it).
        let share = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
        assert!((share(Ziggurat::normal().ratios()) - 0.9724).abs() < 1e-4);
        assert!((share(Ziggurat::exponential().ratios()) - 0.9778).abs() < 1e-4);
    }

    #[test]
    fn normal_and_exponential_draws_follow_their_distributions() {
        let n = 400_000;
        let mut r = Rng::from_seed(11);
        let normal: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let exponential: Vec<f64> = (0..n).map(|_| r.exponential(2.0)).collect();
        // 1.95 / sqrt(n): the 0.1% critical value of the KS distance.
        let critical = 1.95 / (n as f64).sqrt();
        let d = ks_distance(normal.clone(), phi);
        assert!(d < critical, "normal KS distance {d} >= {critical}");
        let d = ks_distance(exponential, |x| 1.0 - (-x / 2.0).exp());
        assert!(d < critical, "exponential KS distance {d} >= {critical}");
        // The tails (beyond the base layer's edge, drawn separately): P(|z| > 3.44) = 5.76e-4.
        let tail = normal.iter().filter(|z| z.abs() > NORMAL_R).count() as f64 / n as f64;
        assert!((tail - 5.76e-4).abs() < 1.5e-4, "normal tail share {tail}");
        // Symmetry: as many draws below -1 as above 1 (15.87% each).
        let (lo, hi) = (
            normal.iter().filter(|&&z| z < -1.0).count() as f64 / n as f64,
            normal.iter().filter(|&&z| z > 1.0).count() as f64 / n as f64,
        );
        assert!(
            (lo - 0.1587).abs() < 0.003 && (hi - 0.1587).abs() < 0.003,
            "{lo} {hi}"
        );
    }

    #[test]
    fn moments_are_right() {
        let mut r = Rng::from_seed(7);
        let n = 200_000;
        let (mut su, mut sn, mut sn2, mut se) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..n {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            su += u;
            let z = r.normal();
            sn += z;
            sn2 += z * z;
            se += r.exponential(0.1);
        }
        let n = n as f64;
        assert!((su / n - 0.5).abs() < 0.005);
        assert!((sn / n).abs() < 0.01);
        assert!((sn2 / n - 1.0).abs() < 0.02);
        assert!((se / n - 0.1).abs() < 0.002);
    }
}
