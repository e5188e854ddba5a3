//! Elementary functions in plain arithmetic, for the lane loops of the process models.
//!
//! `f64::exp` is a call into the C library: it stops a loop over lanes from vectorising and its
//! result may differ between C libraries. The version here is the textbook one (Cody & Waite
//! argument reduction, Taylor polynomial; Muller, *Elementary Functions*, ch. 11), accurate to a
//! couple of units in the last place and identical on every machine.

/// log2(e).
const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln(2) split in two so that `n * LN2_HI` is exact for |n| < 2^11 (Cody & Waite).
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// 1.5 * 2^52: adding it rounds to an integer held in the low bits of the sum.
const SHIFTER: f64 = 6_755_399_441_055_744.0;

/// `e^x`, within 2 ulp of the exact value for `x` in [-708, 709]; clamped outside (0 is never
/// reached: subnormal results are not produced), NaN for NaN.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let x = x.clamp(-708.0, 709.0);
    // x = n ln2 + r with |r| <= ln2 / 2.
    let kd = x * LOG2_E + SHIFTER;
    let n = kd - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor polynomial of degree 13: truncation below 4e-18 relative on |r| <= 0.347. Evaluated
    // by Estrin's scheme (pairs, then pairs of pairs with r^2, r^4, r^8): about the operations of
    // Horner's rule but a third of its dependency chain, which is what a single problem (one
    // reactor stepping alone) waits on; lane loops are throughput-bound and lose nothing.
    const C: [f64; 14] = [
        1.0,
        1.0,
        0.5,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q = |k: usize| C[k] + C[k + 1] * r;
    let s0 = q(0) + q(2) * r2;
    let s1 = q(4) + q(6) * r2;
    let s2 = q(8) + q(10) * r2;
    let p = (s0 + s1 * r4) + (s2 + q(12) * r4) * r8;
    // 2^n from the low bits of `kd` (n in [-1022, 1023] after the clamp).
    let scale = f64::from_bits((kd.to_bits().wrapping_add(1023)) << 52);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_c_library_to_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -708.0;
        while x < 709.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-16, "worst relative error {worst:e}");
    }

    #[test]
    fn ln2_split_is_fdlibms() {
        assert_eq!(LN2_HI.to_bits(), 0x3fe6_2e42_fee0_0000);
        assert_eq!(LN2_LO.to_bits(), 0x3dea_39ef_3579_3c76);
    }

    #[test]
    fn edges() {
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f64::NAN).is_nan());
        assert!(exp(-1e9) > 0.0 && exp(-1e9) < 1e-300);
        assert!(exp(1e9).is_finite() && exp(1e9) > 1e307);
        assert!((exp(1.0) - std::f64::consts::E).abs() < 1e-15);
    }
}
