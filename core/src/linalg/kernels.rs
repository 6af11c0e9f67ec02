//! Small dense kernels for the fused data pass, with runtime dispatch.
//!
//! The binary is built for generic x86-64 (SSE2), so the hot loops have two
//! versions: portable code, and AVX2+FMA code chosen at run time where the CPU
//! has it (`is_x86_feature_detected!`). Each version sums in a fixed order, so
//! results are reproducible bit for bit on a given machine whatever the number
//! of threads; the two versions round differently (FMA), so results may differ
//! in the last bits between machines with and without AVX2+FMA. Setting the
//! environment variable `TASKROBUST_SIMD=generic` forces the portable code
//! (bit-identical results across x86-64 machines); `TASKROBUST_SIMD=avx2`
//! forbids AVX-512.
//!
//! The data passes have AVX-512 versions that agree with the AVX2 ones bit
//! for bit (same lanes, same combination): on a machine whose memory
//! outruns an AVX2 core the passes are compute-bound, and f32 data then need
//! one conversion per eight values instead of two. The Gram kernel
//! ([`crate::linalg::gram`]) has an AVX-512 version that agrees with its AVX2
//! one bit for bit too.

use crate::linalg::element::Element;
use std::sync::OnceLock;

/// The instruction set the kernels run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust (SSE2 on x86-64).
    Generic,
    /// 256-bit AVX2 with fused multiply-add.
    Avx2Fma,
    /// AVX2+FMA, and AVX-512F for the Gram kernel.
    Avx512,
}

impl Isa {
    /// A short name for reports: `generic`, `avx2+fma` or `avx512f+avx2+fma`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Avx512 => "avx512f+avx2+fma",
        }
    }

    /// Whether the AVX2+FMA versions of the data-pass kernels run.
    pub fn has_avx2_fma(self) -> bool {
        matches!(self, Isa::Avx2Fma | Isa::Avx512)
    }
}

/// What this CPU supports (ignoring `TASKROBUST_SIMD`).
pub fn detected_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            return Isa::Avx2Fma;
        }
    }
    Isa::Generic
}

/// The instruction set in use: detected once per process.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| match std::env::var("TASKROBUST_SIMD").as_deref() {
        Ok("generic") | Ok("off") | Ok("0") => Isa::Generic,
        Ok("avx2") if detected_isa() == Isa::Avx512 => Isa::Avx2Fma,
        _ => detected_isa(),
    })
}

/// `x . y`, with `x` widened to f64 (exact) and the sum in f64.
#[inline]
pub fn dot<T: Element>(x: &[T], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "dot: length mismatch");
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2_fma() {
        if isa() == Isa::Avx512 {
            // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (`isa`
            // checked it at run time), and the lengths are equal.
            return unsafe { x86_512::dot(x, y) };
        }
        // SAFETY: the CPU supports AVX2 and FMA (`isa` checked it at run
        // time), and the lengths are equal (asserted above).
        return unsafe { x86::dot(x, y) };
    }
    generic::dot(x, y)
}

/// `x . x`, with `x` widened to f64 (exact) and the sum in f64: bit for bit
/// `dot(x, x)` for f64 values.
#[inline]
pub fn dot_self<T: Element>(x: &[T]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2_fma() {
        if isa() == Isa::Avx512 {
            // SAFETY: AVX-512F, AVX2 and FMA checked; the same slice twice.
            return unsafe { x86_512::dot(x, x) };
        }
        // SAFETY: the CPU supports AVX2 and FMA (`isa` checked it at run
        // time); both arguments are the same slice.
        return unsafe { x86::dot(x, x) };
    }
    generic::dot(x, x)
}

/// `y += alpha * x`, with `x` widened to f64 (exact).
#[inline]
pub fn axpy<T: Element>(alpha: f64, x: &[T], y: &mut [f64]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2_fma() {
        if isa() == Isa::Avx512 {
            // SAFETY: as in `dot`: the instruction sets checked, lengths equal.
            return unsafe { x86_512::axpy(alpha, x, y) };
        }
        // SAFETY: as in `dot`: AVX2 and FMA checked, lengths asserted equal.
        return unsafe { x86::axpy(alpha, x, y) };
    }
    generic::axpy(alpha, x, y)
}

/// `y = Q x` for a symmetric `Q` given by its upper triangle, row by row
/// (`packed` holds `q_ii, ..., q_id` for i = 1..d): each row gives `y_i` its
/// terms `j >= i` (a dot product) and the later entries their terms
/// `q_ij x_i` (an axpy), so every stored entry is read once.
pub fn symmetric_matvec_packed(packed: &[f64], x: &[f64], y: &mut [f64]) {
    let d = x.len();
    assert_eq!(
        packed.len(),
        d * (d + 1) / 2,
        "symmetric_matvec_packed: packed length"
    );
    assert_eq!(y.len(), d, "symmetric_matvec_packed: y length");
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2_fma() {
        // SAFETY: AVX2 and FMA checked as in `dot`; the lengths of `packed`
        // and `y` asserted above.
        return unsafe { x86::symmetric_matvec_packed(packed, x, y) };
    }
    generic::symmetric_matvec_packed(packed, x, y)
}

/// The fused pass over consecutive samples: `xt` holds `y.len()` samples of
/// length `theta.len()` one after another. For each sample `x_j`:
/// `(loss, slope) = link(x_j . theta, y_j)`, `gradient += slope * x_j` while
/// `x_j` is still in L1. Returns the sum of the losses (in sample order).
/// Samples stored as f32 are widened to f64 as they are loaded: the result is
/// bit for bit that of the same samples stored as f64.
#[inline]
pub fn fused_rows<T, L>(xt: &[T], y: &[f64], theta: &[f64], link: &L, gradient: &mut [f64]) -> f64
where
    T: Element,
    L: Fn(f64, f64) -> (f64, f64),
{
    let d = theta.len();
    assert_eq!(
        xt.len(),
        d * y.len(),
        "fused_rows: xt must hold y.len() samples"
    );
    assert_eq!(gradient.len(), d, "fused_rows: gradient length");
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2_fma() {
        if isa() == Isa::Avx512 {
            // SAFETY: AVX-512F, AVX2 and FMA checked as in `dot`; the
            // lengths asserted above.
            return unsafe { x86_512::fused_rows(xt, y, theta, link, gradient) };
        }
        // SAFETY: AVX2 and FMA checked as in `dot`; `gradient.len() == d`
        // and `xt.len() == d * y.len()` asserted above.
        return unsafe { x86::fused_rows(xt, y, theta, link, gradient) };
    }
    generic::fused_rows(xt, y, theta, link, gradient)
}

/// Sum over consecutive samples of `loss(x_j . theta, y_j)` (losses only).
#[inline]
pub fn loss_rows<T, L>(xt: &[T], y: &[f64], theta: &[f64], loss: &L) -> f64
where
    T: Element,
    L: Fn(f64, f64) -> f64,
{
    let d = theta.len();
    assert_eq!(
        xt.len(),
        d * y.len(),
        "loss_rows: xt must hold y.len() samples"
    );
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2_fma() {
        if isa() == Isa::Avx512 {
            // SAFETY: AVX-512F, AVX2 and FMA checked as in `dot`.
            return unsafe { x86_512::loss_rows(xt, y, theta, loss) };
        }
        // SAFETY: AVX2 and FMA checked as in `dot`; `xt.len()` asserted above.
        return unsafe { x86::loss_rows(xt, y, theta, loss) };
    }
    generic::loss_rows(xt, y, theta, loss)
}

/// Portable versions (also the reference the SIMD versions are tested against).
pub mod generic {
    use crate::linalg::element::Element;

    /// `x . y` with eight accumulator lanes (vectorises on SSE2).
    #[inline]
    pub fn dot<T: Element, U: Element>(x: &[T], y: &[U]) -> f64 {
        debug_assert_eq!(x.len(), y.len());
        let mut acc = [0.0f64; 8];
        let chunks_x = x.chunks_exact(8);
        let chunks_y = y.chunks_exact(8);
        let rest_x = chunks_x.remainder();
        let rest_y = chunks_y.remainder();
        for (a, b) in chunks_x.zip(chunks_y) {
            for k in 0..8 {
                acc[k] += a[k].widen() * b[k].widen();
            }
        }
        let mut tail = 0.0;
        for (a, b) in rest_x.iter().zip(rest_y) {
            tail += a.widen() * b.widen();
        }
        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
    }

    /// `y += alpha * x`.
    #[inline]
    pub fn axpy<T: Element>(alpha: f64, x: &[T], y: &mut [f64]) {
        debug_assert_eq!(x.len(), y.len());
        for (yi, xi) in y.iter_mut().zip(x) {
            *yi += alpha * xi.widen();
        }
    }

    /// See [`super::symmetric_matvec_packed`].
    pub fn symmetric_matvec_packed(packed: &[f64], x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        let mut rows = packed;
        for i in 0..x.len() {
            let (row, rest) = rows.split_at(x.len() - i);
            rows = rest;
            y[i] += dot(row, &x[i..]);
            axpy(x[i], &row[1..], &mut y[i + 1..]);
        }
    }

    /// See [`super::fused_rows`]: one sample at a time, a dot product, the
    /// link, then an axpy into `gradient`.
    #[inline]
    pub fn fused_rows<T, L>(
        xt: &[T],
        y: &[f64],
        theta: &[f64],
        link: &L,
        gradient: &mut [f64],
    ) -> f64
    where
        T: Element,
        L: Fn(f64, f64) -> (f64, f64),
    {
        let d = theta.len();
        let mut loss = 0.0;
        for (x, &yj) in xt.chunks_exact(d).zip(y) {
            let (l, slope) = link(dot(x, theta), yj);
            loss += l;
            axpy(slope, x, gradient);
        }
        loss
    }

    /// See [`super::loss_rows`].
    #[inline]
    pub fn loss_rows<T, L>(xt: &[T], y: &[f64], theta: &[f64], loss: &L) -> f64
    where
        T: Element,
        L: Fn(f64, f64) -> f64,
    {
        let d = theta.len();
        let mut sum = 0.0;
        for (x, &yj) in xt.chunks_exact(d).zip(y) {
            sum += loss(dot(x, theta), yj);
        }
        sum
    }
}

/// AVX2+FMA versions, reached through the safe dispatching functions above
/// (which check the CPU first). Every function here requires a CPU with AVX2
/// and FMA.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::linalg::element::Element;
    use std::arch::x86_64::*;

    /// Horizontal sum in a fixed order: (l0 + l2) + (l1 + l3).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256d) -> f64 {
        let lo = _mm256_castpd256_pd128(v);
        let hi = _mm256_extractf128_pd::<1>(v);
        let pair = _mm_add_pd(lo, hi);
        let swapped = _mm_unpackhi_pd(pair, pair);
        _mm_cvtsd_f64(_mm_add_sd(pair, swapped))
    }

    /// `x . y`: two 4-lane FMA accumulators (lane k takes the values with
    /// index = k mod 8, as in the portable version), then a scalar tail.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. `x` and `y` should have equal
    /// lengths; only the first `min(x.len(), y.len())` values of each are
    /// read, so no length can make it read out of bounds.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot<T: Element, U: Element>(x: &[T], y: &[U]) -> f64 {
        let n = x.len().min(y.len());
        let (px, py) = (x.as_ptr(), y.as_ptr());
        // SAFETY: the caller guarantees AVX2 and FMA (this fn's # Safety).
        // Every load reads four values from i or i + 4 with i + 8 <= n, and
        // `finish_dot` reads indices i..n, all within both slices.
        unsafe {
            let mut a0 = _mm256_setzero_pd();
            let mut a1 = _mm256_setzero_pd();
            let mut i = 0;
            while i + 8 <= n {
                a0 = _mm256_fmadd_pd(T::load4(px.add(i)), U::load4(py.add(i)), a0);
                a1 = _mm256_fmadd_pd(T::load4(px.add(i + 4)), U::load4(py.add(i + 4)), a1);
                i += 8;
            }
            finish_dot(a0, a1, px, py, i, n)
        }
    }

    /// Asks for every cache line of `values` to be brought into L1 (a hint:
    /// no fault, no result changed).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn prefetch_lines<T>(values: &[T]) {
        let bytes = std::mem::size_of_val(values);
        let start = values.as_ptr().cast::<i8>();
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: a prefetch of an address inside `values` (offset < its
            // size in bytes); prefetches never fault and read nothing back.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
            offset += 64;
        }
    }

    /// Combines the two accumulators and adds the tail `i..n` in order.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and `px` and `py` must both be
    /// valid for reads of `f64`s at the indices `i..n`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn finish_dot<T: Element, U: Element>(
        a0: __m256d,
        a1: __m256d,
        px: *const T,
        py: *const U,
        mut i: usize,
        n: usize,
    ) -> f64 {
        let mut total = hsum(_mm256_add_pd(a0, a1));
        while i < n {
            // SAFETY: i < n, and the caller guarantees that indices below n
            // are readable through both pointers (this fn's # Safety).
            total = unsafe { (*px.add(i)).widen().mul_add((*py.add(i)).widen(), total) };
            i += 1;
        }
        total
    }

    /// Four dot products `x_r . y` in one sweep: `y` is loaded once per step
    /// and eight FMA chains are in flight; each result is bit for bit [`dot`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and every `x[r]` must hold at least
    /// `y.len()` values (that many are read from each).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot4<T: Element>(x: [&[T]; 4], y: &[f64]) -> [f64; 4] {
        let n = y.len();
        let py = y.as_ptr();
        let p = [x[0].as_ptr(), x[1].as_ptr(), x[2].as_ptr(), x[3].as_ptr()];
        // SAFETY: the caller guarantees AVX2 and FMA and that every x[r] has
        // at least n values (this fn's # Safety). Every load reads four values
        // from i or i + 4 with i + 8 <= n, and `finish_dot` reads indices
        // i..n, all within `y` and every x[r].
        unsafe {
            let mut lo = [_mm256_setzero_pd(); 4];
            let mut hi = [_mm256_setzero_pd(); 4];
            let mut i = 0;
            while i + 8 <= n {
                let y0 = _mm256_loadu_pd(py.add(i));
                let y1 = _mm256_loadu_pd(py.add(i + 4));
                for r in 0..4 {
                    lo[r] = _mm256_fmadd_pd(T::load4(p[r].add(i)), y0, lo[r]);
                    hi[r] = _mm256_fmadd_pd(T::load4(p[r].add(i + 4)), y1, hi[r]);
                }
                i += 8;
            }
            [
                finish_dot(lo[0], hi[0], p[0], py, i, n),
                finish_dot(lo[1], hi[1], p[1], py, i, n),
                finish_dot(lo[2], hi[2], p[2], py, i, n),
                finish_dot(lo[3], hi[3], p[3], py, i, n),
            ]
        }
    }

    /// `y += alpha * x` with FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. `x` and `y` should have equal
    /// lengths; only the first `min(x.len(), y.len())` values are touched, so
    /// no length can make it access memory out of bounds.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy<T: Element>(alpha: f64, x: &[T], y: &mut [f64]) {
        let n = x.len().min(y.len());
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        // SAFETY: the caller guarantees AVX2 and FMA (this fn's # Safety).
        // Every access covers i..i + width with i + width <= n (width 8, 4,
        // then 1), within both slices; `py` comes from the exclusive borrow
        // `y`, which `x` cannot alias.
        unsafe {
            let a = _mm256_set1_pd(alpha);
            let mut i = 0;
            while i + 8 <= n {
                let y0 = _mm256_fmadd_pd(a, T::load4(px.add(i)), _mm256_loadu_pd(py.add(i)));
                let y1 =
                    _mm256_fmadd_pd(a, T::load4(px.add(i + 4)), _mm256_loadu_pd(py.add(i + 4)));
                _mm256_storeu_pd(py.add(i), y0);
                _mm256_storeu_pd(py.add(i + 4), y1);
                i += 8;
            }
            while i + 4 <= n {
                let y0 = _mm256_fmadd_pd(a, T::load4(px.add(i)), _mm256_loadu_pd(py.add(i)));
                _mm256_storeu_pd(py.add(i), y0);
                i += 4;
            }
            while i < n {
                *py.add(i) = alpha.mul_add((*px.add(i)).widen(), *py.add(i));
                i += 1;
            }
        }
    }

    /// See [`super::symmetric_matvec_packed`]: four rows at a time, so that
    /// their dot products share the loads of `x` and their axpys one load and
    /// store of `y` ([`dot4`], [`axpy4`]); the 4 x 4 diagonal block and the
    /// last `d mod 4` rows one by one.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. `packed` must hold d (d + 1) / 2
    /// values and `y` d, for d = `x.len()`; other lengths panic on a slice
    /// index rather than read out of bounds.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn symmetric_matvec_packed(packed: &[f64], x: &[f64], y: &mut [f64]) {
        let d = x.len();
        y.fill(0.0);
        // Row i (entries i..d) starts after the d + (d - 1) + ... + (d - i + 1) before it.
        let row = |i: usize| {
            let start = i * d - i * i.saturating_sub(1) / 2;
            &packed[start..start + d - i]
        };
        let mut i = 0;
        while i + 4 <= d {
            let rows = [row(i), row(i + 1), row(i + 2), row(i + 3)];
            for (r, entries) in rows.iter().enumerate() {
                for c in r..4 {
                    let q = entries[c - r];
                    y[i + r] = q.mul_add(x[i + c], y[i + r]);
                    if c > r {
                        y[i + c] = q.mul_add(x[i + r], y[i + c]);
                    }
                }
            }
            let tails = [&rows[0][4..], &rows[1][3..], &rows[2][2..], &rows[3][1..]];
            // SAFETY: the caller guarantees AVX2 and FMA (this fn's # Safety).
            // Row i + r holds d - i - r entries, so every tail holds
            // d - i - 4 values: as many as `x[i + 4..]` for `dot4` and
            // `y[i + 4..]` for `axpy4`.
            let dots = unsafe { dot4(tails, &x[i + 4..]) };
            for (r, value) in dots.into_iter().enumerate() {
                y[i + r] += value;
            }
            // SAFETY: as for `dot4` just above.
            unsafe { axpy4([x[i], x[i + 1], x[i + 2], x[i + 3]], tails, &mut y[i + 4..]) };
            i += 4;
        }
        while i < d {
            let entries = row(i);
            // SAFETY: the caller guarantees AVX2 and FMA (this fn's # Safety);
            // `dot` and `axpy` stay within the shorter of their slices.
            unsafe {
                y[i] += dot(entries, &x[i..]);
                axpy(x[i], &entries[1..], &mut y[i + 1..]);
            }
            i += 1;
        }
    }

    /// `y += a0 x0 + a1 x1 + a2 x2 + a3 x3`, element by element in that order:
    /// bit for bit four [`axpy`] calls, with one load and store of `y`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and every `x[r]` must hold at least
    /// `y.len()` values (that many are read from each).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn axpy4<T: Element>(alpha: [f64; 4], x: [&[T]; 4], y: &mut [f64]) {
        let n = y.len();
        let py = y.as_mut_ptr();
        let p = [x[0].as_ptr(), x[1].as_ptr(), x[2].as_ptr(), x[3].as_ptr()];
        // SAFETY: the caller guarantees AVX2 and FMA and that every x[r] has
        // at least n values (this fn's # Safety). Every access covers
        // i..i + 4 with i + 4 <= n, or index i < n, within `y` and every x[r];
        // `py` comes from the exclusive borrow `y`, which no x[r] can alias.
        unsafe {
            let a = [
                _mm256_set1_pd(alpha[0]),
                _mm256_set1_pd(alpha[1]),
                _mm256_set1_pd(alpha[2]),
                _mm256_set1_pd(alpha[3]),
            ];
            let mut i = 0;
            while i + 4 <= n {
                let mut acc = _mm256_loadu_pd(py.add(i));
                acc = _mm256_fmadd_pd(a[0], T::load4(p[0].add(i)), acc);
                acc = _mm256_fmadd_pd(a[1], T::load4(p[1].add(i)), acc);
                acc = _mm256_fmadd_pd(a[2], T::load4(p[2].add(i)), acc);
                acc = _mm256_fmadd_pd(a[3], T::load4(p[3].add(i)), acc);
                _mm256_storeu_pd(py.add(i), acc);
                i += 4;
            }
            while i < n {
                let mut acc = *py.add(i);
                for r in 0..4 {
                    acc = alpha[r].mul_add((*p[r].add(i)).widen(), acc);
                }
                *py.add(i) = acc;
                i += 1;
            }
        }
    }

    /// See [`super::fused_rows`]. The samples are split into eight equal runs
    /// that are walked side by side, one sample of each per step: independent
    /// memory streams keep more cache lines in flight than one (measured on
    /// one core, read-only: 13.5-15 GB/s for four streams against 11-12 for
    /// one; the fused pass went from 30 to 20-23 ms per 268 MB with eight).
    /// Per quad of samples: one sweep for the four dot products, four link
    /// calls, then one pass over the gradient (`g += s_a x_a + s_b x_b +
    /// s_c x_c + s_d x_d`, in that order). Leftover samples follow one at a
    /// time. The order depends on the number of samples alone, not on threads.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and `gradient.len()` must not
    /// exceed `theta.len()` (the gradient pass reads `gradient.len()` values
    /// of each sample); callers pass `gradient.len() == theta.len()` and
    /// `xt.len() == theta.len() * y.len()` (a shorter `xt` panics on a slice
    /// index).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fused_rows<T, L>(
        xt: &[T],
        y: &[f64],
        theta: &[f64],
        link: &L,
        gradient: &mut [f64],
    ) -> f64
    where
        T: Element,
        L: Fn(f64, f64) -> (f64, f64),
    {
        let d = theta.len();
        let run = y.len() / 8;
        let mut loss = 0.0;
        // Step i takes sample i of each of the eight runs, as two quads.
        let quads = |i: usize| {
            let at = |k: usize| k * run + i;
            [[at(0), at(1), at(2), at(3)], [at(4), at(5), at(6), at(7)]]
        };
        let samples = |rows: [usize; 4]| rows.map(|j| &xt[j * d..(j + 1) * d]);
        // SAFETY: the caller guarantees AVX2 and FMA (this fn's # Safety);
        // every sample holds d = theta.len() values, as `dot4` requires.
        let dots = |rows: [[usize; 4]; 2]| unsafe {
            [dot4(samples(rows[0]), theta), dot4(samples(rows[1]), theta)]
        };
        // Software pipelining: the dot products of step i + 1 are issued
        // before the link calls of step i, so that the transcendental latency
        // overlaps with loads. Sums keep their order.
        let mut z = if run > 0 {
            dots(quads(0))
        } else {
            [[0.0; 4]; 2]
        };
        for i in 0..run {
            let rows = quads(i);
            let z_next = if i + 1 < run {
                dots(quads(i + 1))
            } else {
                [[0.0; 4]; 2]
            };
            // The samples of step i + 2 are requested now, so that memory
            // keeps streaming while the links of step i are computed (the
            // transcendental link of logistic regression costs as much as
            // reading an f32 sample). A prefetch changes no result.
            if i + 2 < run {
                for quad in quads(i + 2) {
                    for sample in samples(quad) {
                        prefetch_lines(sample);
                    }
                }
            }
            for (quad, zq) in rows.iter().zip(&z) {
                let mut slopes = [0.0; 4];
                for r in 0..4 {
                    let (l, s) = link(zq[r], y[quad[r]]);
                    loss += l;
                    slopes[r] = s;
                }
                // SAFETY: the caller guarantees AVX2 and FMA and
                // gradient.len() <= d (this fn's # Safety); every sample
                // holds d values, as `axpy4` requires.
                unsafe { axpy4(slopes, samples(*quad), gradient) };
            }
            z = z_next;
        }
        for j in 8 * run..y.len() {
            let x = &xt[j * d..(j + 1) * d];
            // SAFETY: the caller guarantees AVX2 and FMA (this fn's # Safety);
            // `dot` and `axpy` stay within the shorter of their slices.
            let (l, slope) = link(unsafe { dot(x, theta) }, y[j]);
            loss += l;
            // SAFETY: as for `dot` just above.
            unsafe { axpy(slope, x, gradient) };
        }
        loss
    }

    /// See [`super::loss_rows`].
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Callers pass
    /// `xt.len() == theta.len() * y.len()`; other lengths cannot make it read
    /// out of bounds.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn loss_rows<T, L>(xt: &[T], y: &[f64], theta: &[f64], loss: &L) -> f64
    where
        T: Element,
        L: Fn(f64, f64) -> f64,
    {
        let d = theta.len();
        let mut sum = 0.0;
        for (x, &yj) in xt.chunks_exact(d).zip(y) {
            // SAFETY: the caller guarantees AVX2 and FMA (this fn's # Safety);
            // `dot` stays within the shorter of its slices.
            sum += loss(unsafe { dot(x, theta) }, yj);
        }
        sum
    }
}

/// AVX-512 versions of the data-pass kernels, bit for bit the AVX2 ones:
/// lane k of one 8-lane accumulator takes the indices k mod 8, as lane k of
/// the AVX2 versions' two 4-lane accumulators does, and the two halves are
/// combined as those two are; element-wise updates round the same at any
/// width. Half the instructions per value: the passes are compute-bound on
/// machines whose memory outruns one AVX2 core (and f32 values need one
/// conversion per eight instead of two).
#[cfg(target_arch = "x86_64")]
mod x86_512 {
    use super::x86::finish_dot;
    use crate::linalg::element::Element;
    use std::arch::x86_64::*;

    /// The two 256-bit halves of `v`: lanes 0-3 and 4-7.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn halves(v: __m512d) -> (__m256d, __m256d) {
        (_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd::<1>(v))
    }

    /// See [`super::x86::dot`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA. Only the first
    /// `min(x.len(), y.len())` values of each slice are read.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn dot<T: Element, U: Element>(x: &[T], y: &[U]) -> f64 {
        let n = x.len().min(y.len());
        let (px, py) = (x.as_ptr(), y.as_ptr());
        // SAFETY: the caller guarantees the instruction sets; every load
        // reads eight values from i with i + 8 <= n, and `finish_dot` reads
        // indices i..n, all within both slices.
        unsafe {
            let mut acc = _mm512_setzero_pd();
            let mut i = 0;
            while i + 8 <= n {
                acc = _mm512_fmadd_pd(T::load8(px.add(i)), U::load8(py.add(i)), acc);
                i += 8;
            }
            let (lo, hi) = halves(acc);
            finish_dot(lo, hi, px, py, i, n)
        }
    }

    /// Eight dot products `x_r . y` in one sweep: eight independent FMA
    /// chains (one per sample, 32 registers hold them), `y` loaded once per
    /// step; each result is bit for bit [`super::x86::dot`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA, and every `x[r]` must
    /// hold at least `y.len()` values.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn dot8<T: Element>(x: [&[T]; 8], y: &[f64]) -> [f64; 8] {
        let n = y.len();
        let py = y.as_ptr();
        let p = x.map(|s| s.as_ptr());
        // SAFETY: the caller guarantees the instruction sets and that every
        // x[r] has at least n values; loads read i..i + 8 with i + 8 <= n,
        // `finish_dot` indices i..n.
        unsafe {
            let mut acc = [_mm512_setzero_pd(); 8];
            let mut i = 0;
            while i + 8 <= n {
                let yv = _mm512_loadu_pd(py.add(i));
                for r in 0..8 {
                    acc[r] = _mm512_fmadd_pd(T::load8(p[r].add(i)), yv, acc[r]);
                }
                i += 8;
            }
            let mut out = [0.0; 8];
            for r in 0..8 {
                let (lo, hi) = halves(acc[r]);
                out[r] = finish_dot(lo, hi, p[r], py, i, n);
            }
            out
        }
    }

    /// See [`super::x86::axpy`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA. Only the first
    /// `min(x.len(), y.len())` values are touched.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn axpy<T: Element>(alpha: f64, x: &[T], y: &mut [f64]) {
        let n = x.len().min(y.len());
        let (px, py) = (x.as_ptr(), y.as_mut_ptr());
        // SAFETY: the caller guarantees the instruction sets; every access
        // covers i..i + width with i + width <= n, within both slices; `py`
        // comes from the exclusive borrow `y`.
        unsafe {
            let a = _mm512_set1_pd(alpha);
            let mut i = 0;
            while i + 8 <= n {
                let v = _mm512_fmadd_pd(a, T::load8(px.add(i)), _mm512_loadu_pd(py.add(i)));
                _mm512_storeu_pd(py.add(i), v);
                i += 8;
            }
            while i < n {
                *py.add(i) = alpha.mul_add((*px.add(i)).widen(), *py.add(i));
                i += 1;
            }
        }
    }

    /// `y += a0 x0 + ... + a7 x7`, element by element in that order: bit
    /// for bit two [`super::x86::axpy4`] calls (samples 0-3, then 4-7), with
    /// one load and store of `y`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA, and every `x[r]` must
    /// hold at least `y.len()` values.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn axpy8<T: Element>(alpha: [f64; 8], x: [&[T]; 8], y: &mut [f64]) {
        let n = y.len();
        let py = y.as_mut_ptr();
        let p = x.map(|s| s.as_ptr());
        // SAFETY: the caller guarantees the instruction sets and that every
        // x[r] has at least n values; accesses cover i..i + 8 with
        // i + 8 <= n, or index i < n; `py` comes from the exclusive borrow `y`.
        unsafe {
            let a = alpha.map(|v| _mm512_set1_pd(v));
            let mut i = 0;
            while i + 8 <= n {
                let mut acc = _mm512_loadu_pd(py.add(i));
                for r in 0..8 {
                    acc = _mm512_fmadd_pd(a[r], T::load8(p[r].add(i)), acc);
                }
                _mm512_storeu_pd(py.add(i), acc);
                i += 8;
            }
            while i < n {
                let mut acc = *py.add(i);
                for r in 0..8 {
                    acc = alpha[r].mul_add((*p[r].add(i)).widen(), acc);
                }
                *py.add(i) = acc;
                i += 1;
            }
        }
    }

    /// One sweep over the features for two steps of the pass: the samples
    /// `here` are added to the gradient (`gradient += alpha_0 x_0 + ... +
    /// alpha_7 x_7`, bit for bit [`axpy8`]) while the dot products of the
    /// samples `next` with `theta` are taken (bit for bit [`dot8`]). While
    /// the samples `here` are still in L1, the next ones stream in from
    /// memory, so loads are in flight the whole time; and every cache line of
    /// the samples `ahead` is requested into L2 (a hint that changes no
    /// result), so that memory keeps streaming while the next links are
    /// computed.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA; every pointer in `next`,
    /// `here` and `ahead` must be valid for reads of `d = theta.len()`
    /// values, and `gradient.len() == d`.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn dot8_axpy8<T: Element>(
        pn: [*const T; 8],
        theta: &[f64],
        alpha: [f64; 8],
        ph: [*const T; 8],
        ahead: Option<[*const T; 8]>,
        gradient: &mut [f64],
    ) -> [f64; 8] {
        let n = theta.len();
        let (pt, pg) = (theta.as_ptr(), gradient.as_mut_ptr());
        // SAFETY: the caller guarantees the instruction sets, that every
        // sample holds at least n values and that `gradient` holds n; vector
        // accesses cover i..i + 8 with i + 8 <= n, the tails indices i..n;
        // `pg` comes from the exclusive borrow `gradient`, which no sample
        // can alias. Prefetches read nothing back and never fault; their
        // addresses lie inside the samples `ahead` (i < n).
        unsafe {
            let a = alpha.map(|v| _mm512_set1_pd(v));
            let mut acc = [_mm512_setzero_pd(); 8];
            let mut block = |i: usize| {
                let tv = _mm512_loadu_pd(pt.add(i));
                for r in 0..8 {
                    acc[r] = _mm512_fmadd_pd(T::load8(pn[r].add(i)), tv, acc[r]);
                }
                let mut g = _mm512_loadu_pd(pg.add(i));
                for r in 0..8 {
                    g = _mm512_fmadd_pd(a[r], T::load8(ph[r].add(i)), g);
                }
                _mm512_storeu_pd(pg.add(i), g);
            };
            let mut i = 0;
            if let Some(pa) = ahead {
                while i + 8 <= n {
                    // One prefetch per 64-byte line of each sample.
                    if (i * std::mem::size_of::<T>()).is_multiple_of(64) {
                        for p in pa {
                            _mm_prefetch::<_MM_HINT_T1>(p.add(i).cast::<i8>());
                        }
                    }
                    block(i);
                    i += 8;
                }
            } else {
                while i + 8 <= n {
                    block(i);
                    i += 8;
                }
            }
            for j in i..n {
                let mut g = *pg.add(j);
                for r in 0..8 {
                    g = alpha[r].mul_add((*ph[r].add(j)).widen(), g);
                }
                *pg.add(j) = g;
            }
            let mut out = [0.0; 8];
            for r in 0..8 {
                let (lo, hi) = halves(acc[r]);
                out[r] = finish_dot(lo, hi, pn[r], pt, i, n);
            }
            out
        }
    }

    /// [`super::x86::fused_rows`] on 512-bit vectors (bit for bit the same).
    /// See [`super::fused_rows`]. The samples are split into eight equal runs
    /// that are walked side by side, one sample of each per step: independent
    /// memory streams keep more cache lines in flight than one. Per step: the
    /// eight link calls, then one sweep ([`dot8_axpy8`]) that adds the step's
    /// samples to the gradient (`g += s_0 x_0 + ... + s_7 x_7`, in that
    /// order) and takes the next step's dot products, while the samples three
    /// steps ahead are prefetched. Leftover samples follow one at a time. The
    /// order of every sum depends on the number of samples alone, not on
    /// threads, and is that of the AVX2 version.
    ///
    /// The previous order (dot products of step i + 1, links, then the
    /// gradient of step i, with every line of step i + 2 prefetched into L1
    /// in a loop of its own) spent more instructions on that loop than on
    /// the arithmetic, and left no loads in flight during the links; in cache
    /// this order is 1.2-1.5x faster per core (`fused_in_cache` example;
    /// benches/peer/README.md has the figures).
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA. Callers pass
    /// `gradient.len() == theta.len()` (asserted) and
    /// `xt.len() == theta.len() * y.len()` (a shorter `xt` panics on a slice
    /// index).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn fused_rows<T, L>(
        xt: &[T],
        y: &[f64],
        theta: &[f64],
        link: &L,
        gradient: &mut [f64],
    ) -> f64
    where
        T: Element,
        L: Fn(f64, f64) -> (f64, f64),
    {
        /// Steps between a step's prefetch and its dot products.
        const AHEAD: usize = 3;
        let d = theta.len();
        assert_eq!(gradient.len(), d, "fused_rows: gradient length");
        assert_eq!(xt.len(), d * y.len(), "fused_rows: xt length");
        let run = y.len() / 8;
        // The first sample of each run.
        let starts: [*const T; 8] = std::array::from_fn(|k| xt.as_ptr().wrapping_add(k * run * d));
        let mut loss = 0.0;
        // Step i takes sample i of each of the eight runs.
        let rows = |i: usize| std::array::from_fn::<usize, 8, _>(|k| k * run + i);
        let samples = |rows: [usize; 8]| rows.map(|j| &xt[j * d..(j + 1) * d]);
        if run > 0 {
            // SAFETY: the caller guarantees AVX-512F, AVX2 and FMA (this
            // fn's # Safety); every sample holds d = theta.len() values.
            let mut z = unsafe { dot8(samples(rows(0)), theta) };
            for i in 0..run {
                let here = rows(i);
                let mut slopes = [0.0; 8];
                for r in 0..8 {
                    let (l, s) = link(z[r], y[here[r]]);
                    loss += l;
                    slopes[r] = s;
                }
                if i + 1 < run {
                    // Sample i + k of each run (raw pointers: bounds checks
                    // on 24 slices per step cost a tenth of an f32 sweep).
                    let step = |k: usize| starts.map(|p| p.wrapping_add((i + k) * d));
                    let ahead = (i + AHEAD < run).then(|| step(AHEAD));
                    // SAFETY: as for `dot8` above; samples i, i + 1 and
                    // i + AHEAD of run k (when i + AHEAD < run), all below
                    // `run`, lie inside `xt` (its length asserted), and
                    // gradient.len() == d (asserted).
                    z = unsafe { dot8_axpy8(step(1), theta, slopes, step(0), ahead, gradient) };
                } else {
                    // SAFETY: as for `dot8` above.
                    unsafe { axpy8(slopes, samples(here), gradient) };
                }
            }
        }
        for j in 8 * run..y.len() {
            let x = &xt[j * d..(j + 1) * d];
            // SAFETY: the caller guarantees AVX-512F, AVX2 and FMA (this fn's # Safety);
            // `dot` and `axpy` stay within the shorter of their slices.
            let (l, slope) = link(unsafe { dot(x, theta) }, y[j]);
            loss += l;
            // SAFETY: as for `dot` just above.
            unsafe { axpy(slope, x, gradient) };
        }
        loss
    }

    /// See [`super::loss_rows`].
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA. Callers pass
    /// `xt.len() == theta.len() * y.len()`; other lengths cannot make it read
    /// out of bounds.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn loss_rows<T, L>(xt: &[T], y: &[f64], theta: &[f64], loss: &L) -> f64
    where
        T: Element,
        L: Fn(f64, f64) -> f64,
    {
        let d = theta.len();
        let mut sum = 0.0;
        for (x, &yj) in xt.chunks_exact(d).zip(y) {
            // SAFETY: the caller guarantees AVX-512F, AVX2 and FMA (this fn's # Safety);
            // `dot` stays within the shorter of its slices.
            sum += loss(unsafe { dot(x, theta) }, yj);
        }
        sum
    }
}

/// Numerically stable `ln(1 + exp(t))`.
#[inline]
pub fn softplus(t: f64) -> f64 {
    if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    }
}

/// Logistic function `1 / (1 + exp(-t))`, stable for large |t|.
#[inline]
pub fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// `(softplus(t), sigmoid(t))` from one `exp` and one `ln_1p`: the logistic
/// loss and its slope per sample, at a third of the transcendental calls.
#[inline]
pub fn softplus_and_sigmoid(t: f64) -> (f64, f64) {
    let e = (-t.abs()).exp();
    let log_term = e.ln_1p();
    let inv = 1.0 / (1.0 + e);
    if t > 0.0 {
        (t + log_term, inv)
    } else {
        (log_term, e * inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: f64) -> Vec<f64> {
        (0..n)
            .map(|i| ((i as f64 + seed) * 0.7548776662).fract() - 0.5)
            .collect()
    }

    #[test]
    fn dot_matches_naive_sum_for_every_tail_length() {
        for n in 0..70 {
            let x = data(n, 0.1);
            let y = data(n, 0.3);
            let naive: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            let scale: f64 = x.iter().zip(&y).map(|(a, b)| (a * b).abs()).sum();
            for value in [dot(&x, &y), generic::dot(&x, &y)] {
                assert!((value - naive).abs() <= 1e-14 * scale.max(1.0), "n={n}");
            }
        }
    }

    #[test]
    fn packed_symmetric_matvec_matches_the_full_product() {
        // d around the block of four rows, and the SIMD widths.
        for d in [1, 2, 3, 4, 5, 7, 8, 9, 13, 30, 64] {
            let full = nalgebra::DMatrix::from_fn(d, d, |i, j| {
                let (a, b) = (i.min(j), i.max(j));
                ((a * 37 + b * 11) % 23) as f64 / 23.0 - 0.4
            });
            let packed: Vec<f64> = (0..d)
                .flat_map(|i| (i..d).map(move |j| (i, j)))
                .map(|(i, j)| full[(i, j)])
                .collect();
            let x = data(d, 0.3);
            let want = &full * nalgebra::DVector::from_column_slice(&x);
            let scale = full.abs() * nalgebra::DVector::from_iterator(d, x.iter().map(|v| v.abs()));
            let mut fast = vec![f64::NAN; d];
            let mut portable = vec![f64::NAN; d];
            symmetric_matvec_packed(&packed, &x, &mut fast);
            generic::symmetric_matvec_packed(&packed, &x, &mut portable);
            for i in 0..d {
                for got in [fast[i], portable[i]] {
                    assert!(
                        (got - want[i]).abs() <= 1e-14 * (1.0 + scale[i]),
                        "d={d} i={i}: {got} vs {}",
                        want[i]
                    );
                }
            }
        }
    }

    #[test]
    fn dispatched_kernels_agree_with_the_portable_ones() {
        for n in [1, 3, 4, 7, 8, 15, 16, 17, 31, 256, 259] {
            let x = data(n, 0.2);
            let mut y1 = data(n, 0.9);
            let mut y2 = y1.clone();
            axpy(-1.5, &x, &mut y1);
            generic::axpy(-1.5, &x, &mut y2);
            for (a, b) in y1.iter().zip(&y2) {
                assert!((a - b).abs() <= 1e-15 * (1.0 + b.abs()), "n={n}");
            }
            let rows = 5;
            let xt = data(n * rows, 0.4);
            let labels: Vec<f64> = (0..rows)
                .map(|j| if j % 2 == 0 { 1.0 } else { -1.0 })
                .collect();
            let theta = data(n, 0.6);
            let link = |z: f64, y: f64| {
                let r = z - y;
                (0.5 * r * r, r)
            };
            let mut g1 = vec![0.0; n];
            let mut g2 = vec![0.0; n];
            let l1 = fused_rows(&xt, &labels, &theta, &link, &mut g1);
            let l2 = generic::fused_rows(&xt, &labels, &theta, &link, &mut g2);
            assert!((l1 - l2).abs() <= 1e-13 * l2.abs().max(1.0), "n={n}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!((a - b).abs() <= 1e-13 * (1.0 + b.abs()), "n={n}");
            }
            let s1 = loss_rows(&xt, &labels, &theta, &|z, y| (z - y).abs());
            let s2 = generic::loss_rows(&xt, &labels, &theta, &|z, y| (z - y).abs());
            assert!((s1 - s2).abs() <= 1e-13 * s2.abs().max(1.0), "n={n}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn interleaved_runs_are_bit_identical_to_one_sample_steps_in_that_order() {
        if !detected_isa().has_avx2_fma() {
            return;
        }
        let (d, rows) = (37, 21);
        let xt = data(d * rows, 0.8);
        let labels: Vec<f64> = (0..rows)
            .map(|j| if j % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let theta = data(d, 0.15);
        let link = |z: f64, y: f64| softplus_and_sigmoid(-y * z);
        let mut blocked = vec![0.5; d];
        // SAFETY: AVX2 and FMA are present (checked above).
        let loss = unsafe { x86::fused_rows(&xt, &labels, &theta, &link, &mut blocked) };
        let mut single = vec![0.5; d];
        let mut expected = 0.0;
        let run = rows / 8;
        let order = (0..run)
            .flat_map(|i| (0..8).map(move |k| k * run + i))
            .chain(8 * run..rows);
        for j in order {
            let x = &xt[j * d..(j + 1) * d];
            // SAFETY: as above.
            let (l, slope) = link(unsafe { x86::dot(x, &theta) }, labels[j]);
            expected += l;
            // SAFETY: as above.
            unsafe { x86::axpy(slope, x, &mut single) };
        }
        assert_eq!(loss.to_bits(), expected.to_bits());
        assert_eq!(blocked, single);
    }

    #[test]
    fn f32_values_give_the_bits_of_their_f64_widening() {
        let link = |z: f64, y: f64| softplus_and_sigmoid(-y * z);
        for n in [1, 3, 4, 7, 8, 15, 16, 17, 31, 256, 259] {
            let narrow: Vec<f32> = data(n, 0.2).iter().map(|&v| v as f32).collect();
            let wide: Vec<f64> = narrow.iter().map(|&v| f64::from(v)).collect();
            let y = data(n, 0.9);
            assert_eq!(
                dot(&narrow, &y).to_bits(),
                dot(&wide, &y).to_bits(),
                "n={n}"
            );
            assert_eq!(
                dot_self(&narrow).to_bits(),
                dot(&wide, &wide).to_bits(),
                "n={n}"
            );
            assert_eq!(
                dot_self(&wide).to_bits(),
                dot(&wide, &wide).to_bits(),
                "n={n}"
            );
            assert_eq!(
                generic::dot(&narrow, &y).to_bits(),
                generic::dot(&wide, &y).to_bits()
            );
            let (mut a, mut b) = (y.clone(), y.clone());
            axpy(-1.5, &narrow, &mut a);
            axpy(-1.5, &wide, &mut b);
            assert_eq!(a, b, "n={n}");
            // 21 samples: the eight interleaved runs and a tail.
            let rows = 21;
            let xt32: Vec<f32> = data(n * rows, 0.4).iter().map(|&v| v as f32).collect();
            let xt64: Vec<f64> = xt32.iter().map(|&v| f64::from(v)).collect();
            let labels: Vec<f64> = (0..rows)
                .map(|j| if j % 3 == 0 { 1.0 } else { -1.0 })
                .collect();
            let theta = data(n, 0.6);
            for portable in [false, true] {
                let (mut g32, mut g64) = (vec![0.25; n], vec![0.25; n]);
                let (l32, l64) = if portable {
                    (
                        generic::fused_rows(&xt32, &labels, &theta, &link, &mut g32),
                        generic::fused_rows(&xt64, &labels, &theta, &link, &mut g64),
                    )
                } else {
                    (
                        fused_rows(&xt32, &labels, &theta, &link, &mut g32),
                        fused_rows(&xt64, &labels, &theta, &link, &mut g64),
                    )
                };
                assert_eq!(l32.to_bits(), l64.to_bits(), "n={n} portable={portable}");
                assert_eq!(g32, g64, "n={n} portable={portable}");
            }
            let loss = |z: f64, y: f64| (z - y).abs();
            assert_eq!(
                loss_rows(&xt32, &labels, &theta, &loss).to_bits(),
                loss_rows(&xt64, &labels, &theta, &loss).to_bits()
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_passes_are_bit_identical_to_the_avx2_ones() {
        if detected_isa() != Isa::Avx512 {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        }
        let link = |z: f64, y: f64| softplus_and_sigmoid(-y * z);
        for n in [1, 3, 4, 7, 8, 9, 12, 15, 16, 17, 31, 37, 256, 259] {
            let wide = data(n, 0.2);
            let narrow: Vec<f32> = wide.iter().map(|&v| v as f32).collect();
            let y = data(n, 0.9);
            // SAFETY (every call below): AVX-512F, AVX2 and FMA are present
            // (checked above); the slices have the lengths each requires.
            unsafe {
                assert_eq!(
                    x86_512::dot(&wide, &y).to_bits(),
                    x86::dot(&wide, &y).to_bits(),
                    "n={n}"
                );
                assert_eq!(
                    x86_512::dot(&narrow, &y).to_bits(),
                    x86::dot(&narrow, &y).to_bits(),
                    "n={n}"
                );
                let (mut a, mut b) = (y.clone(), y.clone());
                x86_512::axpy(0.7, &narrow, &mut a);
                x86::axpy(0.7, &narrow, &mut b);
                assert_eq!(a, b, "n={n}");
            }
            // 67 samples: runs of eight steps, so the sweeps that prefetch
            // three steps ahead run too.
            for rows in [5, 21, 67] {
                let xt = data(n * rows, 0.4);
                let xt32: Vec<f32> = xt.iter().map(|&v| v as f32).collect();
                let labels: Vec<f64> = (0..rows)
                    .map(|j| if j % 3 == 0 { 1.0 } else { -1.0 })
                    .collect();
                let theta = data(n, 0.6);
                let (mut g1, mut g2, mut g3, mut g4) =
                    (vec![0.5; n], vec![0.5; n], vec![0.5; n], vec![0.5; n]);
                // SAFETY: as above.
                let (l1, l2, l3, l4) = unsafe {
                    (
                        x86_512::fused_rows(&xt, &labels, &theta, &link, &mut g1),
                        x86::fused_rows(&xt, &labels, &theta, &link, &mut g2),
                        x86_512::fused_rows(&xt32, &labels, &theta, &link, &mut g3),
                        x86::fused_rows(&xt32, &labels, &theta, &link, &mut g4),
                    )
                };
                assert_eq!(
                    (l1.to_bits(), &g1),
                    (l2.to_bits(), &g2),
                    "n={n} rows={rows}"
                );
                assert_eq!(
                    (l3.to_bits(), &g3),
                    (l4.to_bits(), &g4),
                    "n={n} rows={rows} f32"
                );
                let loss = |z: f64, y: f64| (z - y).abs();
                // SAFETY: as above.
                unsafe {
                    assert_eq!(
                        x86_512::loss_rows(&xt32, &labels, &theta, &loss).to_bits(),
                        x86::loss_rows(&xt32, &labels, &theta, &loss).to_bits()
                    );
                }
            }
        }
    }

    #[test]
    fn kernels_are_deterministic() {
        let x = data(1000, 0.5);
        let y = data(1000, 0.25);
        let first = dot(&x, &y).to_bits();
        for _ in 0..10 {
            assert_eq!(dot(&x, &y).to_bits(), first);
        }
    }

    #[test]
    #[should_panic(expected = "length mismatch")]
    fn mismatched_lengths_are_caught() {
        dot(&[1.0, 2.0], &[1.0]);
    }

    #[test]
    fn softplus_and_sigmoid_are_stable() {
        assert_eq!(softplus(-800.0), 0.0);
        assert_eq!(softplus(800.0), 800.0);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-16);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert_eq!(sigmoid(800.0), 1.0);
    }

    #[test]
    fn fused_softplus_sigmoid_matches_the_separate_functions() {
        for t in [
            -800.0, -40.0, -3.5, -1e-9, 0.0, 1e-9, 0.25, 2.0, 37.0, 800.0,
        ] {
            let (sp, sg) = softplus_and_sigmoid(t);
            let (a, b) = (softplus(t), sigmoid(t));
            assert!((sp - a).abs() <= 1e-15 * a.abs().max(1e-300), "t={t}");
            assert!((sg - b).abs() <= 4e-16 * b.abs().max(1e-300), "t={t}");
        }
    }
}
