//! Gram matrices `X^T X` (and `X^T y`) of row-major samples: a
//! register-blocked syrk.
//!
//! The least-squares Gram form spends its set-up here (`n d^2` multiply-adds
//! per task against `n d` for one data pass), so this is a BLAS-3 kernel in
//! the style of BLIS: rows are packed, `KC` at a time, into groups of
//! `NR W` columns (row by row, so one sample's part of a group is
//! contiguous); a `W x (NR W)` tile of `C` lives in registers while it
//! accumulates `x_k[i] x_k[j]` over the packed rows, its `W` row factors read
//! from the same packed rows; only tiles on or above the diagonal are
//! computed. The group being multiplied (`KC NR W` values) stays in L1 while
//! the row factors stream past it. There are three versions, chosen as in
//! [`crate::linalg::kernels`]: AVX-512 (W = 8), AVX2+FMA (W = 4) and portable code.
//!
//! Every entry is one chain `c <- x_k[i] x_k[j] + c` over `k = 0, 1, ..., n-1`
//! in order, whatever the tiling, the panel width or the split into parallel
//! jobs. So the result does not depend on the thread count, and the AVX-512
//! and AVX2 versions (both fused multiply-add) agree bit for bit; the portable
//! version rounds each product separately.

use crate::error::{any_non_finite, non_finite_flag};
use crate::linalg::element::Element;
use crate::linalg::kernels::{axpy, detected_isa, Isa};
use std::ops::Range;

/// Rows packed at a time: a group of `KC x NR W` values fits in L1 next to
/// the row factors (measured at d = 256: 128 is 10% faster than 256 or 64).
const KC: usize = 128;
/// Vectors per tile row: `W x NR` accumulators plus `NR` loads fit in the registers.
const NR: usize = 3;

/// Unscaled `X^T X` entries `C[i][j]` for the rows `i` of the panels in
/// `rows` and `j >= i` (whole tiles, so some `j < i` near the diagonal too),
/// into a row-major buffer `ldc = panels * W` wide that holds just those
/// rows; the caller mirrors the upper triangle. With `moment` given, also
/// `X^T y` (one `axpy` per sample, in sample order). `x` holds `n = x.len() / d` samples of length `d`,
/// stored as f64 or f32 (widened exactly as they are packed: the result is bit
/// for bit that of the same values stored as f64).
pub struct GramJob<'a, T: Element = f64> {
    /// The kernels to use ([`crate::linalg::kernels::isa`] unless testing one against another).
    pub isa: Isa,
    /// The samples, row-major: `n` rows of `d` values one after another.
    pub x: &'a [T],
    /// The length of a sample (the order of the Gram matrix).
    pub d: usize,
    /// The panels of `W` rows of the Gram matrix that this job computes
    /// (a strip from [`balanced_rows`]).
    pub rows: Range<usize>,
    /// `(y, m)`: the `n` labels and the `d` values that receive `X^T y`
    /// (unscaled), or `None` to skip the moment.
    pub moment: Option<(&'a [f64], &'a mut [f64])>,
}

/// Panel width of the kernels for `isa` (the `W` above).
pub fn panel_width(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 8,
        Isa::Avx2Fma => 4,
        Isa::Generic => 8,
    }
}

/// Whether this CPU can run the kernels for `isa`.
pub fn supported(isa: Isa) -> bool {
    match isa {
        Isa::Generic => true,
        Isa::Avx2Fma => detected_isa().has_avx2_fma(),
        Isa::Avx512 => detected_isa() == Isa::Avx512,
    }
}

/// Splits the panels into at most `parts` row ranges of about equal work (a
/// row of panels `a` costs `panels - a` tiles).
pub fn balanced_rows(panels: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, panels.max(1));
    let total = panels * (panels + 1) / 2;
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut done) = (0, 0);
    for part in 1..=parts {
        let target = total * part / parts;
        let mut end = start;
        while end < panels && (done < target || part == parts) {
            done += panels - end;
            end += 1;
        }
        if end > start {
            ranges.push(start..end);
        }
        start = end;
    }
    ranges
}

impl<T: Element> GramJob<'_, T> {
    /// Runs the job into `c`: `rows.len() * W` rows of `ldc` values (zero or
    /// not: every entry on or above the diagonal is overwritten). Returns
    /// whether every sample value it packed is finite (a job whose rows start
    /// at panel 0 packs them all), so that the pass can double as the data's
    /// NaN / infinity check.
    pub fn run(self, c: &mut [f64]) -> bool {
        assert!(
            supported(self.isa),
            "gram: {} kernels on this CPU",
            self.isa.name()
        );
        let w = panel_width(self.isa);
        let p = self.d.div_ceil(w);
        let ldc = p * w;
        assert_eq!(c.len(), self.rows.len() * w * ldc, "gram: output size");
        assert!(self.rows.end <= p, "gram: row panels out of range");
        assert_eq!(self.x.len() % self.d.max(1), 0, "gram: ragged samples");
        let d = self.d;
        let n = self.x.len().checked_div(d).unwrap_or(0);
        // Group g holds panels g NR .. g NR + NR; this job's rows need the
        // groups from the one holding its first panel on (columns j >= i).
        let group_width = NR * w;
        let groups = p.div_ceil(NR);
        let first_group = self.rows.start / NR;
        let mut packed = vec![0.0; KC * group_width * (groups - first_group.min(groups))];
        let mut moment = self.moment;
        if let Some((y, m)) = &moment {
            assert_eq!(y.len(), n, "gram: y length");
            assert_eq!(m.len(), d, "gram: moment length");
        }
        if let Some((_, m)) = moment.as_mut() {
            m.fill(0.0);
        }
        let mut finite = true;
        let mut k0 = 0;
        while k0 < n {
            let kc = KC.min(n - k0);
            let block = &self.x[k0 * d..(k0 + kc) * d];
            finite &= pack(block, d, w, first_group * NR, kc, &mut packed);
            if let Some((y, m)) = moment.as_mut() {
                for (row, &yk) in block.chunks_exact(d).zip(&y[k0..k0 + kc]) {
                    axpy(yk, row, m);
                }
            }
            let group_len = kc * group_width;
            for g in first_group..groups {
                let b = g * NR;
                let nr = (p - b).min(NR);
                let rhs = packed[(g - first_group) * group_len..].as_ptr();
                for a in self.rows.start..(b + nr).min(self.rows.end) {
                    let offset = (a / NR - first_group) * group_len + (a % NR) * w;
                    let lhs = packed[offset..].as_ptr();
                    let tile = &mut c[(a - self.rows.start) * w * ldc + b * w..];
                    // SAFETY: the CPU supports `self.isa` (asserted at the
                    // top). `lhs` and `rhs` point into packed groups of kc
                    // rows of `group_width` values, reading w and nr w <=
                    // group_width values of each; `tile` holds w rows of ldc
                    // values from column b w, and b w + nr w <= p w = ldc.
                    unsafe {
                        run_tile(
                            self.isa,
                            nr,
                            lhs,
                            rhs,
                            group_width,
                            kc,
                            tile.as_mut_ptr(),
                            ldc,
                            k0 == 0,
                        )
                    };
                }
            }
            k0 += kc;
        }
        if n == 0 {
            c.fill(0.0);
        }
        finite
    }
}

/// Copies `kc` samples into groups of `NR` panels of `w` columns, from panel
/// `first` on: group g holds, row by row, columns `(first + g NR) w ..` of
/// each sample, `NR w` values per row, zero-padded past `d`. Returns whether
/// every value copied is finite.
fn pack<T: Element>(
    block: &[T],
    d: usize,
    w: usize,
    first: usize,
    kc: usize,
    packed: &mut [f64],
) -> bool {
    match w {
        8 => pack_fixed::<T, 8>(block, d, first, kc, packed),
        4 => pack_fixed::<T, 4>(block, d, first, kc, packed),
        _ => unreachable!("panel width {w}"),
    }
}

/// [`pack`] for a width known at compile time (fixed-size copies, no memcpy calls).
fn pack_fixed<T: Element, const W: usize>(
    block: &[T],
    d: usize,
    first: usize,
    kc: usize,
    packed: &mut [f64],
) -> bool {
    let mut flags = 0u64;
    let group_width = NR * W;
    let group_len = kc * group_width;
    let at = |q: usize, k: usize| (q / NR) * group_len + k * group_width + (q % NR) * W;
    for (k, row) in block.chunks_exact(d).enumerate() {
        let mut chunks = row[first * W..].chunks_exact(W);
        let mut q = 0;
        for chunk in &mut chunks {
            let values: &[T; W] = chunk.try_into().expect("W values");
            for &v in values {
                flags |= non_finite_flag(v.widen());
            }
            let dst: &mut [f64; W] = (&mut packed[at(q, k)..at(q, k) + W])
                .try_into()
                .expect("W values");
            *dst = values.map(T::widen);
            q += 1;
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            for &v in tail {
                flags |= non_finite_flag(v.widen());
            }
            let dst = &mut packed[at(q, k)..at(q, k) + W];
            for (p, v) in dst.iter_mut().zip(tail) {
                *p = v.widen();
            }
            dst[tail.len()..].fill(0.0);
        }
    }
    !any_non_finite(flags)
}

/// One tile with `nr` vectors per row, dispatched on the instruction set:
/// for each of `kc` rows (`stride` values apart), `w` row factors at `lhs`
/// and `nr w` column factors at `rhs`.
///
/// # Safety
/// The CPU must support `isa` (see [`supported`]). `lhs` and `rhs` must be
/// readable for `kc` rows of `stride` values, with `w` and `nr w` values in
/// each (`w` = [`panel_width`]`(isa)`), and `c` readable and writable for `w`
/// rows of `ldc` values with `nr w` columns in bounds; `c` must not overlap
/// `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_tile(
    isa: Isa,
    nr: usize,
    lhs: *const f64,
    rhs: *const f64,
    stride: usize,
    kc: usize,
    c: *mut f64,
    ldc: usize,
    first: bool,
) {
    // SAFETY (every kernel call): the caller guarantees that the CPU supports
    // `isa`, whose kernel is the one called, and the extent of the pointers
    // for `nr` vectors per tile row (this fn's # Safety); `nr` is passed on
    // as the kernel's `N` (any value but 2 or 3 as 1, which touches less).
    macro_rules! dispatch {
        ($($kernel:ident)::+) => {
            match nr {
                3 => unsafe { $($kernel)::+::<3>(lhs, rhs, stride, kc, c, ldc, first) },
                2 => unsafe { $($kernel)::+::<2>(lhs, rhs, stride, kc, c, ldc, first) },
                _ => unsafe { $($kernel)::+::<1>(lhs, rhs, stride, kc, c, ldc, first) },
            }
        };
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => dispatch!(x86::tile_avx512),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => dispatch!(x86::tile_avx2),
        _ => dispatch!(tile_generic),
    }
}

/// Portable tile (8 wide): `acc[r][l] += lhs[k][r] * rhs[k][l]`, rounded twice.
///
/// # Safety
/// `lhs` and `rhs` must be readable for `kc` rows of `stride` values, with 8
/// and `N 8` values in each, and `c` readable (unless `first`) and writable
/// for 8 rows of `ldc` values with `N 8` columns in bounds; `c` must not
/// overlap `lhs` or `rhs`.
unsafe fn tile_generic<const N: usize>(
    lhs: *const f64,
    rhs: *const f64,
    stride: usize,
    kc: usize,
    c: *mut f64,
    ldc: usize,
    first: bool,
) {
    const W: usize = 8;
    let mut acc = [[[0.0f64; W]; N]; W];
    // SAFETY: every access is at row r < W = 8 of `c` (offset r ldc) and
    // column q W + l < N W, or at row k < kc of `lhs` and `rhs` (offset
    // k stride) and column < W, resp. q W + l < N W: within the extents the
    // caller guarantees (this fn's # Safety). The slices made from `lhs` and
    // `rhs` live only while nothing writes through `c`, which does not
    // overlap them.
    unsafe {
        if !first {
            for (r, row) in acc.iter_mut().enumerate() {
                for (q, v) in row.iter_mut().enumerate() {
                    for (l, value) in v.iter_mut().enumerate() {
                        *value = *c.add(r * ldc + q * W + l);
                    }
                }
            }
        }
        for k in 0..kc {
            let a = std::slice::from_raw_parts(lhs.add(k * stride), W);
            for (row, &s) in acc.iter_mut().zip(a) {
                for (q, v) in row.iter_mut().enumerate() {
                    let b = std::slice::from_raw_parts(rhs.add(k * stride + q * W), W);
                    for (value, &bl) in v.iter_mut().zip(b) {
                        *value += s * bl;
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (q, v) in row.iter().enumerate() {
                for (l, &value) in v.iter().enumerate() {
                    *c.add(r * ldc + q * W + l) = value;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// A `W x (N W)` tile in vector registers of `W` lanes: the same loop for
    /// both instruction sets, with their intrinsics.
    macro_rules! tile_kernel {
        ($(#[$doc:meta])* $name:ident, $feature:literal, $w:literal,
         $zero:ident, $load:ident, $store:ident, $splat:ident, $fma:ident) => {
            $(#[$doc])*
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $name<const N: usize>(
                lhs: *const f64,
                rhs: *const f64,
                stride: usize,
                kc: usize,
                c: *mut f64,
                ldc: usize,
                first: bool,
            ) {
                // SAFETY: the caller guarantees the CPU features (this fn's
                // # Safety). Every access is at row r < W of `c` (offset
                // r ldc) and columns q W .. q W + W <= N W, or at row k < kc
                // of `lhs` and `rhs` (offset k stride) and column r < W,
                // resp. columns q W .. q W + W <= N W: within the extents the
                // caller guarantees.
                unsafe {
                    let mut acc = [[$zero(); N]; $w];
                    if !first {
                        for (r, row) in acc.iter_mut().enumerate() {
                            for (q, v) in row.iter_mut().enumerate() {
                                *v = $load(c.add(r * ldc + q * $w));
                            }
                        }
                    }
                    for k in 0..kc {
                        let mut b = [$zero(); N];
                        for (q, v) in b.iter_mut().enumerate() {
                            *v = $load(rhs.add(k * stride + q * $w));
                        }
                        for (r, row) in acc.iter_mut().enumerate() {
                            let s = $splat(*lhs.add(k * stride + r));
                            for (v, &bq) in row.iter_mut().zip(&b) {
                                *v = $fma(s, bq, *v);
                            }
                        }
                    }
                    for (r, row) in acc.iter().enumerate() {
                        for (q, &v) in row.iter().enumerate() {
                            $store(c.add(r * ldc + q * $w), v);
                        }
                    }
                }
            }
        };
    }

    tile_kernel!(
        /// 8 x (N 8) tile in zmm registers.
        ///
        /// # Safety
        /// The CPU must support AVX-512F. `lhs` and `rhs` must be readable for
        /// `kc` rows of `stride` values, with 8 and `N 8` values in each, and
        /// `c` readable (unless `first`) and writable for 8 rows of `ldc`
        /// values with `N 8` columns in bounds; `c` must not overlap `lhs` or
        /// `rhs`.
        tile_avx512, "avx512f", 8,
        _mm512_setzero_pd, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_set1_pd, _mm512_fmadd_pd
    );
    tile_kernel!(
        /// 4 x (N 4) tile in ymm registers.
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA. `lhs` and `rhs` must be readable for
        /// `kc` rows of `stride` values, with 4 and `N 4` values in each, and
        /// `c` readable (unless `first`) and writable for 4 rows of `ldc`
        /// values with `N 4` columns in bounds; `c` must not overlap `lhs` or
        /// `rhs`.
        tile_avx2, "avx2,fma", 4,
        _mm256_setzero_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_set1_pd, _mm256_fmadd_pd
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        // Values with full mantissas, so that any change of rounding shows.
        let value =
            |k: u64| ((k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64) / 2f64.powi(53) - 0.5;
        let x = (0..n * d)
            .map(|k| value(k as u64 + seed * 1_000_003))
            .collect();
        let y = (0..n)
            .map(|k| value(k as u64 + seed * 7_919 + 17))
            .collect();
        (x, y)
    }

    /// Upper triangle and moment with the rows split into `parts` jobs.
    fn gram(isa: Isa, x: &[f64], y: &[f64], d: usize, parts: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let w = panel_width(isa);
        let ldc = d.div_ceil(w) * w;
        let mut c = vec![f64::NAN; ldc * ldc];
        let mut moment = vec![f64::NAN; d];
        let mut rest = c.as_mut_slice();
        let mut m = Some(moment.as_mut_slice());
        for rows in balanced_rows(d.div_ceil(w), parts) {
            let (mine, tail) = rest.split_at_mut(rows.len() * w * ldc);
            rest = tail;
            GramJob {
                isa,
                x,
                d,
                rows,
                moment: m.take().map(|m| (y, m)),
            }
            .run(mine);
        }
        let upper = (0..d)
            .map(|i| (i..d).map(|j| c[i * ldc + j]).collect())
            .collect();
        (upper, moment)
    }

    /// The sample-order chain of every entry, fused (`fma`) or not.
    fn reference(x: &[f64], y: &[f64], d: usize, fused: bool) -> (Vec<Vec<f64>>, Vec<f64>) {
        let step = |a: f64, b: f64, c: f64| if fused { a.mul_add(b, c) } else { a * b + c };
        let upper = (0..d)
            .map(|i| {
                (i..d)
                    .map(|j| {
                        x.chunks_exact(d)
                            .fold(0.0, |c, row| step(row[i], row[j], c))
                    })
                    .collect()
            })
            .collect();
        let moment = (0..d)
            .map(|j| {
                x.chunks_exact(d)
                    .zip(y)
                    .fold(0.0, |c, (row, &yk)| step(yk, row[j], c))
            })
            .collect();
        (upper, moment)
    }

    fn kernels() -> Vec<Isa> {
        [Isa::Generic, Isa::Avx2Fma, Isa::Avx512]
            .into_iter()
            .filter(|&isa| supported(isa))
            .collect()
    }

    #[test]
    fn every_entry_is_its_sample_order_chain_bit_for_bit() {
        // Shapes around the panel widths, the tile width and the block of KC rows.
        for (n, d) in [
            (1, 1),
            (5, 3),
            (300, 13),
            (2 * KC + 3, 30),
            (KC, 8),
            (40, 49),
        ] {
            let (x, y) = samples(n, d, (n * d) as u64);
            for isa in kernels() {
                let (upper, moment) = gram(isa, &x, &y, d, 1);
                let (want, _) = reference(&x, &y, d, isa != Isa::Generic);
                assert_eq!(upper, want, "{} n={n} d={d}", isa.name());
                // The moment goes through kernels::axpy, which follows the
                // process's instruction set (fused with AVX2), not the job's.
                let fused = crate::linalg::kernels::isa().has_avx2_fma();
                let (_, want_moment) = reference(&x, &y, d, fused);
                assert_eq!(moment, want_moment, "{} moment n={n} d={d}", isa.name());
            }
        }
    }

    #[test]
    fn splitting_rows_into_jobs_changes_no_bit() {
        let (n, d) = (700, 61);
        let (x, y) = samples(n, d, 3);
        for isa in kernels() {
            let one = gram(isa, &x, &y, d, 1);
            for parts in [2, 3, 5, 64] {
                assert_eq!(
                    gram(isa, &x, &y, d, parts),
                    one,
                    "{} parts={parts}",
                    isa.name()
                );
            }
        }
    }

    #[test]
    fn row_strips_cover_the_panels_in_order() {
        for panels in [0, 1, 2, 7, 32, 33] {
            for parts in [1, 2, 3, 4, 16, 100] {
                let strips = balanced_rows(panels, parts);
                assert!(strips.len() <= parts.max(1));
                let mut next = 0;
                for s in &strips {
                    assert_eq!(s.start, next, "panels={panels} parts={parts}");
                    assert!(s.end > s.start);
                    next = s.end;
                }
                assert_eq!(next, panels, "panels={panels} parts={parts}");
            }
        }
        // Equal work (tiles), not equal rows: the first strip is the shortest.
        let strips = balanced_rows(32, 2);
        assert!(strips[0].len() < strips[1].len(), "{strips:?}");
    }

    #[test]
    fn the_first_strip_reports_any_non_finite_value() {
        let (n, d) = (300, 13);
        for isa in kernels() {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                for at in [0, 5 * d + 12, n * d - 1] {
                    let (mut x, _) = samples(n, d, 1);
                    x[at] = bad;
                    let w = panel_width(isa);
                    let ldc = d.div_ceil(w) * w;
                    let all = 0..d.div_ceil(w);
                    let mut c = vec![0.0; all.len() * w * ldc];
                    let job = GramJob {
                        isa,
                        x: &x,
                        d,
                        rows: all,
                        moment: None,
                    };
                    assert!(!job.run(&mut c), "{} missed {bad} at {at}", isa.name());
                }
            }
        }
    }

    #[test]
    fn no_samples_give_zeros() {
        for isa in kernels() {
            let (upper, moment) = gram(isa, &[], &[], 5, 2);
            assert!(upper.iter().flatten().all(|&v| v == 0.0));
            assert!(moment.iter().all(|&v| v == 0.0));
        }
    }
}
