//! The number types task data may be stored in: f64, and f32 as machine
//! learning usually stores features (half the bytes to read per iteration).
//!
//! Every computation widens the stored values to f64 first. Widening f32 to
//! f64 is exact, so the arithmetic on f32 data is the f64 arithmetic on the
//! same real numbers: every rounding-error bound written for f64 data holds
//! unchanged, and a pass over f32 data gives bit for bit the result of the
//! same pass over f64 data holding the same (f32-representable) values.

use std::fmt;

/// The precision data are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE binary64 (NumPy `'<f8'`).
    #[default]
    F64,
    /// IEEE binary32 (NumPy `'<f4'`).
    F32,
}

impl Dtype {
    /// `f64` or `f32` (as in problem files and on the command line).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "f64",
            Dtype::F32 => "f32",
        }
    }

    /// From `f64`/`float64` or `f32`/`float32`; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "f64" | "float64" => Some(Dtype::F64),
            "f32" | "float32" => Some(Dtype::F32),
            _ => None,
        }
    }

    /// Bytes per value.
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F64 => 8,
            Dtype::F32 => 4,
        }
    }

    /// The little-endian NumPy type string: `<f8` or `<f4`.
    pub fn npy_descr(self) -> &'static str {
        match self {
            Dtype::F64 => "<f8",
            Dtype::F32 => "<f4",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f64 {}
    impl Sealed for f32 {}
}

/// A stored number type: f64 or f32 (sealed). Values are only ever used
/// through [`Element::widen`], which is exact.
pub trait Element:
    Copy
    + Default
    + PartialEq
    + PartialOrd
    + fmt::Debug
    + fmt::Display
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// Which of the two this is.
    const DTYPE: Dtype;

    /// The value as an f64 (exact).
    fn widen(self) -> f64;

    /// The value nearest to `v` (ties to even); infinite where `v` overflows.
    fn narrow(v: f64) -> Self;

    /// From the little-endian bytes of one value (`Self::DTYPE.bytes()` of them).
    fn from_le_slice(bytes: &[u8]) -> Self;

    /// Appends the little-endian bytes of the value.
    fn extend_le_bytes(self, out: &mut Vec<u8>);

    /// Parses decimal text, rounded once to the nearest value of this type.
    fn parse_text(text: &str) -> Option<Self>;

    /// Four values from `p` on, widened into a vector of f64.
    ///
    /// # Safety
    /// The CPU must support AVX2, and `p` must be valid for reads of four values.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    unsafe fn load4(p: *const Self) -> std::arch::x86_64::__m256d;

    /// Eight values from `p` on, widened into a 512-bit vector of f64.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, and `p` must be valid for reads of eight values.
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m512d;
}

impl Element for f64 {
    const DTYPE: Dtype = Dtype::F64;

    #[inline(always)]
    fn widen(self) -> f64 {
        self
    }

    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v
    }

    fn from_le_slice(bytes: &[u8]) -> Self {
        f64::from_le_bytes(bytes.try_into().expect("8 bytes"))
    }

    fn extend_le_bytes(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn parse_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load4(p: *const f64) -> std::arch::x86_64::__m256d {
        // SAFETY: the caller guarantees AVX2 and four readable values.
        unsafe { std::arch::x86_64::_mm256_loadu_pd(p) }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load8(p: *const f64) -> std::arch::x86_64::__m512d {
        // SAFETY: the caller guarantees AVX-512F and eight readable values.
        unsafe { std::arch::x86_64::_mm512_loadu_pd(p) }
    }
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::F32;

    #[inline(always)]
    fn widen(self) -> f64 {
        f64::from(self)
    }

    #[inline(always)]
    fn narrow(v: f64) -> Self {
        v as f32
    }

    fn from_le_slice(bytes: &[u8]) -> Self {
        f32::from_le_bytes(bytes.try_into().expect("4 bytes"))
    }

    fn extend_le_bytes(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }

    fn parse_text(text: &str) -> Option<Self> {
        // Parsed straight to f32: one rounding (through f64 would be two).
        text.parse().ok()
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load4(p: *const f32) -> std::arch::x86_64::__m256d {
        use std::arch::x86_64::{_mm256_cvtps_pd, _mm_loadu_ps};
        // SAFETY: the caller guarantees AVX2 and four readable values; the
        // conversion to f64 is exact.
        unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m512d {
        use std::arch::x86_64::{_mm256_loadu_ps, _mm512_cvtps_pd};
        // SAFETY: the caller guarantees AVX-512F and eight readable values;
        // the conversion to f64 is exact.
        unsafe { _mm512_cvtps_pd(_mm256_loadu_ps(p)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_exact_and_names_round_trip() {
        for v in [0.1f32, f32::MAX, f32::MIN_POSITIVE, 1e-45, -3.5] {
            assert_eq!(v.widen() as f32, v);
            assert_eq!(f32::narrow(v.widen()), v);
        }
        // 1 + 2^-24 + 2^-60: through f64 it rounds to the tie 1 + 2^-24 and
        // then to 1 (even); straight to f32 it rounds up.
        let text = "1.00000005960464477627";
        assert_eq!(f32::parse_text(text), Some(1.0 + f32::EPSILON));
        assert_eq!(text.parse::<f64>().unwrap() as f32, 1.0);
        for d in [Dtype::F64, Dtype::F32] {
            assert_eq!(Dtype::from_name(d.name()), Some(d));
        }
        assert_eq!(Dtype::from_name("f16"), None);
    }
}
