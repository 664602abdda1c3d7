//! Fixed-point numbers for scores, confidences, rates and weights.
//!
//! Every quantity the engine compares or sums is an integer, so aggregation is exact,
//! independent of vote order, and identical on every machine. A [`Ppm`] is a fraction in
//! parts per million; a [`Ratio`] is an exact `num / den` threshold.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Parts per million of one: `Ppm(1_000_000)` is 1.0.
pub const PPM_ONE: u32 = 1_000_000;

/// A fraction in `[0, 1]`, stored as parts per million.
///
/// Serialized as a plain number of parts per million; use [`Ppm::from_f64`] at the edges
/// (scenario files, user input) and [`Ppm::as_f64`] only for display.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Ppm(u32);

impl Ppm {
    /// 0.0
    pub const ZERO: Ppm = Ppm(0);
    /// 1.0
    pub const ONE: Ppm = Ppm(PPM_ONE);
    /// 0.5
    pub const HALF: Ppm = Ppm(PPM_ONE / 2);

    /// A fraction from parts per million; `None` above one million.
    pub const fn new(ppm: u32) -> Option<Ppm> {
        if ppm > PPM_ONE {
            None
        } else {
            Some(Ppm(ppm))
        }
    }

    /// A fraction from parts per million, saturating at 1.0.
    pub const fn saturating(ppm: u64) -> Ppm {
        if ppm > PPM_ONE as u64 {
            Ppm(PPM_ONE)
        } else {
            Ppm(ppm as u32)
        }
    }

    /// Rounds `x` to the nearest part per million; `None` when `x` is not in `[0, 1]` or NaN.
    pub fn from_f64(x: f64) -> Option<Ppm> {
        if !(0.0..=1.0).contains(&x) {
            return None;
        }
        // In range and finite, so the cast cannot truncate.
        Some(Ppm((x * f64::from(PPM_ONE)).round() as u32))
    }

    /// The raw parts per million.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// For display and reports only; never compare these.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(PPM_ONE)
    }

    /// `self × other`, rounded down.
    pub const fn mul(self, other: Ppm) -> Ppm {
        Ppm(((self.0 as u64 * other.0 as u64) / PPM_ONE as u64) as u32)
    }

    /// `|self − other|`.
    pub const fn abs_diff(self, other: Ppm) -> Ppm {
        Ppm(self.0.abs_diff(other.0))
    }

    /// `part / whole` as a fraction, rounded down; zero when `whole` is zero.
    pub fn ratio(part: u128, whole: u128) -> Ppm {
        if whole == 0 {
            return Ppm::ZERO;
        }
        let ppm = part.saturating_mul(u128::from(PPM_ONE)) / whole;
        Ppm::saturating(u64::try_from(ppm).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.as_f64())
    }
}

/// An exact rational threshold `num / den` with `0 < num ≤ den`.
///
/// `reached(part, whole)` is `part / whole ≥ num / den`, computed as
/// `part × den ≥ whole × num` in `u128`, so it is exact for every integer tally.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(try_from = "RatioRepr", into = "RatioRepr")]
pub struct Ratio {
    num: u64,
    den: u64,
}

/// Ratios are equal when their values are: `66/100 == 33/50`.
impl PartialEq for Ratio {
    fn eq(&self, other: &Ratio) -> bool {
        u128::from(self.num) * u128::from(other.den) == u128::from(other.num) * u128::from(self.den)
    }
}

impl Eq for Ratio {}

#[derive(Serialize, Deserialize)]
struct RatioRepr {
    num: u64,
    den: u64,
}

impl TryFrom<RatioRepr> for Ratio {
    type Error = String;
    fn try_from(r: RatioRepr) -> Result<Self, Self::Error> {
        Ratio::new(r.num, r.den).ok_or_else(|| format!("invalid ratio {}/{}", r.num, r.den))
    }
}

impl From<Ratio> for RatioRepr {
    fn from(r: Ratio) -> Self {
        RatioRepr { num: r.num, den: r.den }
    }
}

impl Ratio {
    /// The design's 66% agreement threshold.
    pub const SEED_THRESHOLD: Ratio = Ratio { num: 66, den: 100 };
    /// A strict simple majority: used as `> 1/2` by [`Ratio::exceeded`].
    pub const HALF: Ratio = Ratio { num: 1, den: 2 };

    /// `num / den`; `None` unless `0 < num ≤ den`.
    pub const fn new(num: u64, den: u64) -> Option<Ratio> {
        if num == 0 || den == 0 || num > den {
            None
        } else {
            Some(Ratio { num, den })
        }
    }

    /// A threshold from a fraction in `(0, 1]`, kept to parts per million.
    pub fn from_f64(x: f64) -> Option<Ratio> {
        let ppm = Ppm::from_f64(x)?;
        let g = gcd(u64::from(ppm.raw()), u64::from(PPM_ONE));
        Ratio::new(u64::from(ppm.raw()) / g.max(1), u64::from(PPM_ONE) / g.max(1))
    }

    /// Numerator.
    pub const fn num(self) -> u64 {
        self.num
    }

    /// Denominator.
    pub const fn den(self) -> u64 {
        self.den
    }

    /// `part / whole ≥ num / den` (false when `whole` is zero).
    pub fn reached(self, part: u128, whole: u128) -> bool {
        whole > 0 && part.saturating_mul(u128::from(self.den)) >= whole.saturating_mul(u128::from(self.num))
    }

    /// `part / whole > num / den` (false when `whole` is zero).
    pub fn exceeded(self, part: u128, whole: u128) -> bool {
        whole > 0 && part.saturating_mul(u128::from(self.den)) > whole.saturating_mul(u128::from(self.num))
    }

    /// The smallest count `k` with `k / n ≥ num / den`: `ceil(n × num / den)`.
    pub fn min_count(self, n: u64) -> u64 {
        let prod = u128::from(n) * u128::from(self.num);
        let den = u128::from(self.den);
        u64::try_from(prod.div_ceil(den)).unwrap_or(u64::MAX)
    }

    /// For display only.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// As parts per million, rounded down.
    pub fn as_ppm(self) -> Ppm {
        Ppm::ratio(u128::from(self.num), u128::from(self.den))
    }
}

/// As a percentage with at most two decimals: `66%`, `66.67%`.
impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = format!("{:.2}", self.as_f64() * 100.0);
        write!(f, "{}%", pct.trim_end_matches('0').trim_end_matches('.'))
    }
}

const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_from_f64_rounds_and_rejects_out_of_range() {
        assert_eq!(Ppm::from_f64(0.66), Some(Ppm(660_000)));
        assert_eq!(Ppm::from_f64(1.0), Some(Ppm::ONE));
        assert_eq!(Ppm::from_f64(1.7), None);
        assert_eq!(Ppm::from_f64(-0.1), None);
        assert_eq!(Ppm::from_f64(f64::NAN), None);
    }

    #[test]
    fn ppm_arithmetic() {
        assert_eq!(Ppm::HALF.mul(Ppm::HALF), Ppm(250_000));
        assert_eq!(Ppm(300_000).abs_diff(Ppm(900_000)), Ppm(600_000));
        assert_eq!(Ppm::ratio(1, 3), Ppm(333_333));
        assert_eq!(Ppm::ratio(5, 0), Ppm::ZERO);
        assert_eq!(Ppm::new(1_000_001), None);
    }

    #[test]
    fn ratio_threshold_edges() {
        let t = Ratio::SEED_THRESHOLD;
        // 66/100 exactly reaches 0.66; 65/100 does not.
        assert!(t.reached(66, 100));
        assert!(!t.reached(65, 100));
        assert!(!t.exceeded(66, 100));
        // 2 of 3 is 66.7% ≥ 66%.
        assert!(t.reached(2, 3));
        assert!(!t.reached(3, 5));
        assert!(t.reached(4, 5));
        assert!(!t.reached(0, 0));
        assert_eq!(t.min_count(5), 4);
        assert_eq!(t.min_count(6), 4);
        assert_eq!(t.min_count(100), 66);
        assert_eq!(Ratio::HALF.min_count(4), 2);
    }

    #[test]
    fn ratio_displays_as_a_percentage() {
        assert_eq!(Ratio::SEED_THRESHOLD.to_string(), "66%");
        assert_eq!(Ratio::new(2, 3).map(|r| r.to_string()), Some("66.67%".to_owned()));
        assert_eq!(Ratio::new(1, 2).map(|r| r.to_string()), Some("50%".to_owned()));
    }

    #[test]
    fn ratio_from_f64_reduces() {
        assert_eq!(Ratio::from_f64(0.66), Some(Ratio::SEED_THRESHOLD));
        assert_eq!(Ratio::from_f64(0.0), None);
        assert_eq!(Ratio::from_f64(1.5), None);
        assert_eq!(Ratio::new(3, 2), None);
    }
}
