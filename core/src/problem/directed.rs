//! Directed rounding, emulated under round-to-nearest.
//!
//! One IEEE 754 operation rounded to nearest lands within half a unit in the
//! last place of the exact result, at every magnitude (subnormal results
//! included), so the neighbouring float on the chosen side bounds the exact
//! result: `(a + b).next_up() >= a + b` exactly. A bound computed as a chain of
//! these operations holds in floating point with no operation count and no
//! allowance factor, and it is within one unit per operation of the exact
//! value. Overflow stays valid: a sum rounded to `+inf` gives `f64::MAX` as its
//! lower bound, and one rounded to `-inf` gives `-f64::MAX` as its upper bound.
//! NaN stays NaN.
//!
//! The results are one unit wider than necessary when an operation happens to
//! be exact; the certificates trade that unit for a proof with no counting.

/// A lower bound on the exact `a + b`.
pub fn add_down(a: f64, b: f64) -> f64 {
    (a + b).next_down()
}

/// An upper bound on the exact `a + b`.
pub fn add_up(a: f64, b: f64) -> f64 {
    (a + b).next_up()
}

/// A lower bound on the exact `a - b`.
pub fn sub_down(a: f64, b: f64) -> f64 {
    (a - b).next_down()
}

/// An upper bound on the exact `a - b`.
pub fn sub_up(a: f64, b: f64) -> f64 {
    (a - b).next_up()
}

/// A lower bound on the exact `a b`.
pub fn mul_down(a: f64, b: f64) -> f64 {
    (a * b).next_down()
}

/// An upper bound on the exact `a b`.
pub fn mul_up(a: f64, b: f64) -> f64 {
    (a * b).next_up()
}

/// A lower bound on the exact `a / b`.
pub fn div_down(a: f64, b: f64) -> f64 {
    (a / b).next_down()
}

/// An upper bound on the exact `a / b`.
pub fn div_up(a: f64, b: f64) -> f64 {
    (a / b).next_up()
}

/// A lower bound on the exact square root of `x >= 0`, never below 0.
pub fn sqrt_down(x: f64) -> f64 {
    x.sqrt().next_down().max(0.0)
}

/// An upper bound on the exact square root of `x >= 0`.
pub fn sqrt_up(x: f64) -> f64 {
    x.sqrt().next_up()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 + 2^-60 rounds to 1 under round-to-nearest: the exact sum lies
    /// strictly between 1 and its upper neighbour, and each bound is the
    /// neighbour on its side, no further.
    #[test]
    fn each_bound_is_the_neighbour_of_the_rounded_result_on_its_side() {
        let tiny = 2f64.powi(-60);
        let above_one = 1.0f64.next_up();
        let below_one = 1.0f64.next_down();
        assert_eq!(add_up(1.0, tiny), above_one);
        assert_eq!(add_down(1.0, tiny), below_one);
        assert_eq!(sub_up(1.0, -tiny), above_one);
        assert_eq!(sub_down(1.0, -tiny), below_one);
        // (1 + 2^-30)^2 = 1 + 2^-29 + 2^-60 rounds down to 1 + 2^-29.
        let a = 1.0 + 2f64.powi(-30);
        let rounded = 1.0 + 2f64.powi(-29);
        assert_eq!(mul_up(a, a), rounded.next_up());
        assert_eq!(mul_down(a, a), rounded.next_down());
        // 1/3 and sqrt 2 are inexact: their bounds are their neighbours.
        let third = 1.0f64 / 3.0;
        assert_eq!(div_up(1.0, 3.0), third.next_up());
        assert_eq!(div_down(1.0, 3.0), third.next_down());
        let root = 2f64.sqrt();
        assert_eq!(sqrt_up(2.0), root.next_up());
        assert_eq!(sqrt_down(2.0), root.next_down());
    }

    #[test]
    fn subnormal_results_and_overflow_stay_bounds() {
        let eta = f64::from_bits(1);
        // eta / 2 rounds to 0 (a tie to even): the bounds straddle it.
        assert_eq!(mul_up(eta, 0.5), eta);
        assert_eq!(mul_down(eta, 0.5), -eta);
        // A product that overflows: the lower bound is the largest float.
        assert_eq!(mul_down(f64::MAX, 2.0), f64::MAX);
        assert_eq!(mul_up(f64::MAX, 2.0), f64::INFINITY);
        assert_eq!(add_up(-f64::MAX, -f64::MAX), -f64::MAX);
        assert_eq!(add_down(-f64::MAX, -f64::MAX), f64::NEG_INFINITY);
        // A root's lower bound never goes below zero; the upper one of 0 is eta.
        assert_eq!(sqrt_down(0.0), 0.0);
        assert_eq!(sqrt_up(0.0), eta);
        assert!(sub_down(f64::NAN, 1.0).is_nan());
        assert!(div_up(1.0, 0.0).is_infinite());
    }
}
