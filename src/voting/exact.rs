//! Exact rational numbers for amounts of money and payment rates, so that ties are ties.
//!
//! Equal shares splits costs among supporters, so shares and payments are fractions whose
//! denominators compound from round to round (hundreds of bits on real elections). Floats
//! would decide ties and near-ties differently from the reference implementation, so every
//! amount the rules compare is an [`Exact`]: a reduced fraction of big integers.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use num_bigint::{BigInt, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact rational number (amounts of money, per-voter shares, payments).
///
/// Always reduced, with a positive denominator, so equal values have equal representations.
/// Serialises as a string: `"17"` or `"1331751/100"`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Exact {
    num: BigInt,
    den: BigInt,
}

/// Why a string is not an exact number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a number: {0:?} (expected digits with an optional decimal part, or a fraction a/b)")]
pub struct ParseExactError(pub String);

impl Exact {
    /// Zero.
    pub fn zero() -> Self {
        Exact {
            num: BigInt::zero(),
            den: BigInt::one(),
        }
    }

    /// A whole number.
    pub fn from_int(value: impl Into<BigInt>) -> Self {
        Exact {
            num: value.into(),
            den: BigInt::one(),
        }
    }

    /// `num / den`, reduced. `den` must not be zero (a zero denominator gives zero, never a panic).
    pub fn ratio(num: impl Into<BigInt>, den: impl Into<BigInt>) -> Self {
        Self::reduced(num.into(), den.into())
    }

    fn reduced(mut num: BigInt, mut den: BigInt) -> Self {
        if den.is_zero() {
            // Callers never divide by zero; stay total rather than panic.
            return Self::zero();
        }
        if den.is_negative() {
            num = -num;
            den = -den;
        }
        let g = num.gcd(&den);
        if !g.is_one() && !g.is_zero() {
            num /= &g;
            den /= &g;
        }
        Exact { num, den }
    }

    /// The numerator of the reduced fraction.
    pub fn numer(&self) -> &BigInt {
        &self.num
    }

    /// The (positive) denominator of the reduced fraction.
    pub fn denom(&self) -> &BigInt {
        &self.den
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.num.is_zero()
    }

    /// Whether this is below zero.
    pub fn is_negative(&self) -> bool {
        self.num.is_negative()
    }

    /// Whether this is a whole number.
    pub fn is_integer(&self) -> bool {
        self.den.is_one()
    }

    /// `self + other`.
    pub fn add(&self, other: &Exact) -> Exact {
        if self.den == other.den {
            return Self::reduced(&self.num + &other.num, self.den.clone());
        }
        Self::reduced(
            &self.num * &other.den + &other.num * &self.den,
            &self.den * &other.den,
        )
    }

    /// `self - other`.
    pub fn sub(&self, other: &Exact) -> Exact {
        if self.den == other.den {
            return Self::reduced(&self.num - &other.num, self.den.clone());
        }
        Self::reduced(
            &self.num * &other.den - &other.num * &self.den,
            &self.den * &other.den,
        )
    }

    /// `self * other`.
    pub fn mul(&self, other: &Exact) -> Exact {
        Self::reduced(&self.num * &other.num, &self.den * &other.den)
    }

    /// `self / other`; zero if `other` is zero.
    pub fn div(&self, other: &Exact) -> Exact {
        Self::reduced(&self.num * &other.den, &self.den * &other.num)
    }

    /// `self * k` for a whole number `k`.
    pub fn mul_int(&self, k: u64) -> Exact {
        Self::reduced(&self.num * BigInt::from(k), self.den.clone())
    }

    /// `self / k` for a whole number `k`; zero if `k` is zero.
    pub fn div_int(&self, k: u64) -> Exact {
        Self::reduced(self.num.clone(), &self.den * BigInt::from(k))
    }

    /// Compares `self` with `other * k` without building the product.
    pub fn cmp_scaled(&self, other: &Exact, k: u64) -> Ordering {
        (&self.num * &other.den).cmp(&(&other.num * &self.den * BigInt::from(k)))
    }

    /// The largest whole number not above this value.
    pub fn floor(&self) -> BigInt {
        self.num.div_floor(&self.den)
    }

    /// The nearest whole number, halves rounded up (away from minus infinity): for display.
    pub fn round(&self) -> BigInt {
        let twice = &self.num * BigInt::from(2) + &self.den;
        twice.div_floor(&(&self.den * BigInt::from(2)))
    }

    /// The nearest whole number as `u64`, halves up; `None` if negative or too large. For display
    /// (e.g. a payment in whole cents).
    pub fn round_u64(&self) -> Option<u64> {
        self.round().to_u64()
    }

    /// A close `f64`, for display and for ordering work (never for decisions).
    pub fn approx(&self) -> f64 {
        approx_ratio(&self.num, &self.den)
    }

    /// The value with `places` decimals, rounded half up: `"1234.57"`. For display.
    pub fn to_decimal_string(&self, places: u32) -> String {
        let scale = BigInt::from(10u32).pow(places);
        let scaled = Exact::reduced(&self.num * &scale, self.den.clone()).round();
        let negative = scaled.is_negative();
        let digits = scaled.abs().to_string();
        let places = places as usize;
        let mut out = String::new();
        if negative {
            out.push('-');
        }
        if places == 0 {
            out.push_str(&digits);
            return out;
        }
        let padded = if digits.len() <= places {
            format!("{}{}", "0".repeat(places + 1 - digits.len()), digits)
        } else {
            digits
        };
        let (int_part, frac_part) = padded.split_at(padded.len() - places);
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
        out
    }

    /// Parses a decimal number exactly (`"1331751.11"`, `"4000.0"`, `"-3"`, `".5"`) or a
    /// fraction (`"7/3"`).
    pub fn parse_decimal(text: &str) -> Result<Exact, ParseExactError> {
        let err = || ParseExactError(text.to_string());
        let t = text.trim();
        if let Some((a, b)) = t.split_once('/') {
            let num: BigInt = parse_int(a.trim()).ok_or_else(err)?;
            let den: BigInt = parse_int(b.trim()).ok_or_else(err)?;
            if den.is_zero() {
                return Err(err());
            }
            return Ok(Exact::reduced(num, den));
        }
        let (negative, body) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err());
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let digits = format!("{int_part}{frac_part}");
        let mut num: BigInt = digits.parse().map_err(|_| err())?;
        if negative {
            num = -num;
        }
        let den = BigInt::from(10u32).pow(frac_part.len() as u32);
        Ok(Exact::reduced(num, den))
    }
}

/// `num / den` as a close `f64` (relative error about 1e-15), however large the two are.
pub(crate) fn approx_ratio(num: &BigInt, den: &BigInt) -> f64 {
    // Shift both into f64's range first: huge numerators and denominators each overflow to
    // infinity although their quotient is modest.
    let shift = num.bits().max(den.bits()).saturating_sub(900);
    let (n, d) = if shift == 0 {
        (num.to_f64().unwrap_or(0.0), den.to_f64().unwrap_or(1.0))
    } else {
        (
            (num >> shift).to_f64().unwrap_or(0.0),
            (den >> shift).to_f64().unwrap_or(1.0),
        )
    };
    if d == 0.0 {
        // The denominator vanished in the shift: the value is astronomically large.
        return if num.sign() == Sign::Minus {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    n / d
}

fn parse_int(s: &str) -> Option<BigInt> {
    let body = s.strip_prefix('-').unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Default for Exact {
    fn default() -> Self {
        Exact::zero()
    }
}

impl From<u64> for Exact {
    fn from(value: u64) -> Self {
        Exact::from_int(value)
    }
}

impl From<u32> for Exact {
    fn from(value: u32) -> Self {
        Exact::from_int(value)
    }
}

impl From<i64> for Exact {
    fn from(value: i64) -> Self {
        Exact::from_int(value)
    }
}

impl From<u128> for Exact {
    fn from(value: u128) -> Self {
        Exact::from_int(value)
    }
}

impl Ord for Exact {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.den == other.den {
            return self.num.cmp(&other.num);
        }
        (&self.num * &other.den).cmp(&(&other.num * &self.den))
    }
}

impl PartialOrd for Exact {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Exact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den.is_one() {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

impl fmt::Debug for Exact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} (≈{})", self.approx())
    }
}

impl FromStr for Exact {
    type Err = ParseExactError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Exact::parse_decimal(s)
    }
}

impl Serialize for Exact {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Exact {
        s.parse().expect("test number")
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(e("1331751.11"), Exact::ratio(133175111, 100));
        assert_eq!(e("4000.0"), Exact::from(4000u64));
        assert_eq!(e(".5"), Exact::ratio(1, 2));
        assert_eq!(e("-3"), Exact::from(-3i64));
        assert_eq!(e("6/4"), Exact::ratio(3, 2));
        for bad in ["", ".", "1.2.3", "1e5", "abc", "1/0", "--1", "1,5"] {
            assert!(bad.parse::<Exact>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn arithmetic_and_order() {
        let third = Exact::ratio(1, 3);
        let sixth = Exact::ratio(1, 6);
        assert_eq!(third.add(&sixth), Exact::ratio(1, 2));
        assert_eq!(third.sub(&sixth), sixth);
        assert_eq!(third.mul(&sixth), Exact::ratio(1, 18));
        assert_eq!(third.div(&sixth), Exact::from(2u64));
        assert_eq!(sixth.mul_int(4), Exact::ratio(2, 3));
        assert_eq!(third.div_int(2), sixth);
        assert!(sixth < third);
        assert_eq!(third.cmp_scaled(&sixth, 2), Ordering::Equal);
        assert_eq!(third.cmp_scaled(&sixth, 3), Ordering::Less);
    }

    #[test]
    fn display_and_rounding() {
        assert_eq!(Exact::ratio(10, 4).to_string(), "5/2");
        assert_eq!(Exact::ratio(5, 2).round(), BigInt::from(3));
        assert_eq!(Exact::ratio(7, 3).round(), BigInt::from(2));
        assert_eq!(Exact::ratio(2, 3).to_decimal_string(2), "0.67");
        assert_eq!(Exact::ratio(-1, 200).to_decimal_string(3), "-0.005");
        assert_eq!(Exact::from(12u64).to_decimal_string(0), "12");
        assert_eq!(Exact::ratio(1, 3).round_u64(), Some(0));
        let json = serde_json::to_string(&Exact::ratio(3, 7)).expect("serialise");
        assert_eq!(json, "\"3/7\"");
        let back: Exact = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, Exact::ratio(3, 7));
    }

    #[test]
    fn approx_survives_huge_fractions() {
        let big = BigInt::from(3) << 2000u32;
        let x = Exact::ratio(big.clone(), big * BigInt::from(2));
        assert!((x.approx() - 0.5).abs() < 1e-12);
        let y = Exact::ratio(BigInt::one() << 3000u32, (BigInt::one() << 3000u32) + 1);
        assert!((y.approx() - 1.0).abs() < 1e-12);
    }
}
