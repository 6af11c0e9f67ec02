//! Scratch: variants of the AVX-512 fused pass, timed in cache against the library's.
use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;
use taskrobust::linalg::element::Element;
use taskrobust::linalg::kernels::{fused_rows, softplus_and_sigmoid};

const D: usize = 256;

fn squared_link(z: f64, y: f64) -> (f64, f64) {
    let r = z - y;
    (0.5 * r * r, r)
}

fn logistic_link(z: f64, y: f64) -> (f64, f64) {
    let (loss, slope) = softplus_and_sigmoid(-y * z);
    (loss, -y * slope)
}

#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn hsum(v: __m512d) -> f64 {
    let lo = _mm512_castpd512_pd256(v);
    let hi = _mm512_extractf64x4_pd::<1>(v);
    let v = _mm256_add_pd(lo, hi);
    let lo = _mm256_castpd256_pd128(v);
    let hi = _mm256_extractf128_pd::<1>(v);
    let pair = _mm_add_pd(lo, hi);
    let swapped = _mm_unpackhi_pd(pair, pair);
    _mm_cvtsd_f64(_mm_add_sd(pair, swapped))
}

#[inline(always)]
unsafe fn dot8<T: Element>(p: [*const T; 8], py: *const f64, n: usize) -> [f64; 8] {
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
        acc.map(|a| hsum(a))
    }
}

#[inline(always)]
unsafe fn axpy8<T: Element>(alpha: [f64; 8], p: [*const T; 8], py: *mut f64, n: usize) {
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
    }
}

#[inline(always)]
unsafe fn axpy16<T: Element>(alpha: [f64; 16], p: [*const T; 16], py: *mut f64, n: usize) {
    unsafe {
        let a = alpha.map(|v| _mm512_set1_pd(v));
        let mut i = 0;
        while i + 8 <= n {
            let mut acc = _mm512_loadu_pd(py.add(i));
            for r in 0..16 {
                acc = _mm512_fmadd_pd(a[r], T::load8(p[r].add(i)), acc);
            }
            _mm512_storeu_pd(py.add(i), acc);
            i += 8;
        }
    }
}

#[inline(always)]
unsafe fn dot8_axpy8<T: Element>(
    p_next: [*const T; 8],
    py: *const f64,
    alpha: [f64; 8],
    p: [*const T; 8],
    g: *mut f64,
    n: usize,
) -> [f64; 8] {
    unsafe {
        let a = alpha.map(|v| _mm512_set1_pd(v));
        let mut acc = [_mm512_setzero_pd(); 8];
        let mut i = 0;
        while i + 8 <= n {
            let yv = _mm512_loadu_pd(py.add(i));
            for r in 0..8 {
                acc[r] = _mm512_fmadd_pd(T::load8(p_next[r].add(i)), yv, acc[r]);
            }
            let mut gv = _mm512_loadu_pd(g.add(i));
            for r in 0..8 {
                gv = _mm512_fmadd_pd(a[r], T::load8(p[r].add(i)), gv);
            }
            _mm512_storeu_pd(g.add(i), gv);
            i += 8;
        }
        acc.map(|a| hsum(a))
    }
}

#[inline(always)]
unsafe fn dot8_axpy8_pf<T: Element, const HINT: i32>(
    p_next: [*const T; 8],
    py: *const f64,
    alpha: [f64; 8],
    p: [*const T; 8],
    p_far: [*const T; 8],
    g: *mut f64,
    n: usize,
    stride: usize,
) -> [f64; 8] {
    unsafe {
        let a = alpha.map(|v| _mm512_set1_pd(v));
        let mut acc = [_mm512_setzero_pd(); 8];
        let mut i = 0;
        while i + 8 <= n {
            if (i * std::mem::size_of::<T>()) % stride == 0 {
                for r in 0..8 {
                    _mm_prefetch::<HINT>(p_far[r].wrapping_add(i).cast::<i8>());
                }
            }
            let yv = _mm512_loadu_pd(py.add(i));
            for r in 0..8 {
                acc[r] = _mm512_fmadd_pd(T::load8(p_next[r].add(i)), yv, acc[r]);
            }
            let mut gv = _mm512_loadu_pd(g.add(i));
            for r in 0..8 {
                gv = _mm512_fmadd_pd(a[r], T::load8(p[r].add(i)), gv);
            }
            _mm512_storeu_pd(g.add(i), gv);
            i += 8;
        }
        acc.map(|a| hsum(a))
    }
}

#[inline(always)]
fn prefetch<const HINT: i32, T>(p: *const T, bytes: usize, stride: usize) {
    let start = p.cast::<i8>();
    let mut offset = 0;
    while offset < bytes {
        unsafe { _mm_prefetch::<HINT>(start.wrapping_add(offset)) };
        offset += stride;
    }
}

#[derive(Clone, Copy, Debug)]
struct Variant {
    pipeline: bool,
    /// 0 none, 1 T0, 2 T1 (L2), 3 NTA
    hint: u8,
    dist: usize,
    stride: usize,
    /// two steps per gradient pass
    pair: bool,
    /// dot of step i + 1 in the loop of the axpy of step i
    fuse: bool,
}

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn variant<T: Element, L: Fn(f64, f64) -> (f64, f64)>(
    v: Variant,
    xt: &[T],
    y: &[f64],
    theta: &[f64],
    link: &L,
    gradient: &mut [f64],
) -> f64 {
    let d = theta.len();
    let run = y.len() / 8;
    let base = xt.as_ptr();
    let rows = |i: usize| std::array::from_fn::<usize, 8, _>(|k| k * run + i);
    let ptrs = |i: usize| rows(i).map(|j| base.wrapping_add(j * d));
    let bytes = d * std::mem::size_of::<T>();
    let pf = |i: usize| {
        if v.hint == 0 || i >= run {
            return;
        }
        for p in ptrs(i) {
            match v.hint {
                1 => prefetch::<_MM_HINT_T0, T>(p, bytes, v.stride),
                2 => prefetch::<_MM_HINT_T1, T>(p, bytes, v.stride),
                _ => prefetch::<_MM_HINT_NTA, T>(p, bytes, v.stride),
            }
        }
    };
    let mut loss = 0.0;
    let g = gradient.as_mut_ptr();
    unsafe {
        if v.fuse {
            let mut z = if run > 0 {
                dot8(ptrs(0), theta.as_ptr(), d)
            } else {
                [0.0; 8]
            };
            for i in 0..run {
                let r0 = rows(i);
                let mut slopes = [0.0; 8];
                for r in 0..8 {
                    let (l, s) = link(z[r], y[r0[r]]);
                    loss += l;
                    slopes[r] = s;
                }
                if i + 1 < run && v.hint != 0 {
                    let far = rows(i + v.dist).map(|j| base.wrapping_add(j * d));
                    z = match v.hint {
                        1 => dot8_axpy8_pf::<T, _MM_HINT_T0>(
                            ptrs(i + 1),
                            theta.as_ptr(),
                            slopes,
                            ptrs(i),
                            far,
                            g,
                            d,
                            v.stride,
                        ),
                        2 => dot8_axpy8_pf::<T, _MM_HINT_T1>(
                            ptrs(i + 1),
                            theta.as_ptr(),
                            slopes,
                            ptrs(i),
                            far,
                            g,
                            d,
                            v.stride,
                        ),
                        _ => dot8_axpy8_pf::<T, _MM_HINT_NTA>(
                            ptrs(i + 1),
                            theta.as_ptr(),
                            slopes,
                            ptrs(i),
                            far,
                            g,
                            d,
                            v.stride,
                        ),
                    };
                } else if i + 1 < run {
                    z = dot8_axpy8(ptrs(i + 1), theta.as_ptr(), slopes, ptrs(i), g, d);
                } else {
                    axpy8(slopes, ptrs(i), g, d);
                }
            }
        } else if v.pair {
            let mut i = 0;
            while i + 2 <= run {
                pf(i + v.dist);
                pf(i + 1 + v.dist);
                let z0 = dot8(ptrs(i), theta.as_ptr(), d);
                let z1 = dot8(ptrs(i + 1), theta.as_ptr(), d);
                let (r0, r1) = (rows(i), rows(i + 1));
                let mut slopes = [0.0; 16];
                for r in 0..8 {
                    let (l, s) = link(z0[r], y[r0[r]]);
                    loss += l;
                    slopes[r] = s;
                }
                for r in 0..8 {
                    let (l, s) = link(z1[r], y[r1[r]]);
                    loss += l;
                    slopes[8 + r] = s;
                }
                let (p0, p1) = (ptrs(i), ptrs(i + 1));
                let p: [*const T; 16] =
                    std::array::from_fn(|k| if k < 8 { p0[k] } else { p1[k - 8] });
                axpy16(slopes, p, g, d);
                i += 2;
            }
            while i < run {
                let z = dot8(ptrs(i), theta.as_ptr(), d);
                let r0 = rows(i);
                let mut slopes = [0.0; 8];
                for r in 0..8 {
                    let (l, s) = link(z[r], y[r0[r]]);
                    loss += l;
                    slopes[r] = s;
                }
                axpy8(slopes, ptrs(i), g, d);
                i += 1;
            }
        } else if v.pipeline {
            let mut z = if run > 0 {
                dot8(ptrs(0), theta.as_ptr(), d)
            } else {
                [0.0; 8]
            };
            for i in 0..run {
                let z_next = if i + 1 < run {
                    dot8(ptrs(i + 1), theta.as_ptr(), d)
                } else {
                    [0.0; 8]
                };
                pf(i + v.dist);
                let r0 = rows(i);
                let mut slopes = [0.0; 8];
                for r in 0..8 {
                    let (l, s) = link(z[r], y[r0[r]]);
                    loss += l;
                    slopes[r] = s;
                }
                axpy8(slopes, ptrs(i), g, d);
                z = z_next;
            }
        } else {
            for i in 0..run {
                pf(i + v.dist);
                let z = dot8(ptrs(i), theta.as_ptr(), d);
                let r0 = rows(i);
                let mut slopes = [0.0; 8];
                for r in 0..8 {
                    let (l, s) = link(z[r], y[r0[r]]);
                    loss += l;
                    slopes[r] = s;
                }
                axpy8(slopes, ptrs(i), g, d);
            }
        }
    }
    assert_eq!(y.len() % 8, 0);
    loss
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("ooc") {
        return ooc(&args[2..]);
    }
    let rows: usize = args.get(1).map_or(1024, |v| v.parse().unwrap());
    let rounds: usize = args.get(2).map_or(9, |v| v.parse().unwrap());
    let passes = (200_000 / rows).max(5);
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let xt64: Vec<f64> = (0..rows * D).map(|_| next()).collect();
    let xt32: Vec<f32> = xt64.iter().map(|&v| v as f32).collect();
    let targets: Vec<f64> = (0..rows).map(|_| next()).collect();
    let labels: Vec<f64> = targets
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let theta: Vec<f64> = (0..D).map(|_| 0.2 * next()).collect();
    let base = Variant {
        pipeline: true,
        hint: 1,
        dist: 2,
        stride: 64,
        pair: false,
        fuse: false,
    };
    let mut variants: Vec<(String, Option<Variant>)> = vec![("library".into(), None)];
    let spec = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "cur,nopf,np-nopf,np-t0d1,np-t1d2,np-t1d4,pair-nopf,pair-t1d4".into());
    for name in spec.split(',') {
        if name == "lib" {
            variants.push((name.to_string(), None));
            continue;
        }
        let mut v = base;
        for part in name.split('-') {
            match part {
                "cur" => {}
                "np" => v.pipeline = false,
                "nopf" => v.hint = 0,
                "fuse" => {
                    v.fuse = true;
                    v.pipeline = false;
                }
                "pair" => {
                    v.pair = true;
                    v.pipeline = false;
                }
                p if p.starts_with('t') => {
                    let (h, dd) = p[1..].split_once('d').unwrap();
                    v.hint = match h {
                        "0" => 1,
                        "1" => 2,
                        _ => 3,
                    };
                    v.dist = dd.parse().unwrap();
                }
                p if p.starts_with('s') => v.stride = p[1..].parse().unwrap(),
                other => panic!("{other}"),
            }
        }
        variants.push((name.to_string(), Some(v)));
    }
    let run_one = |v: &Option<Variant>, which: usize, g: &mut Vec<f64>| -> f64 {
        g.fill(0.0);
        match (v, which) {
            (None, 0) => fused_rows(&xt64, &targets, &theta, &squared_link, g),
            (None, 1) => fused_rows(&xt32, &targets, &theta, &squared_link, g),
            (None, 2) => fused_rows(&xt64, &labels, &theta, &logistic_link, g),
            (None, _) => fused_rows(&xt32, &labels, &theta, &logistic_link, g),
            (Some(v), 0) => unsafe {
                variant(*v, black_box(&xt64), &targets, &theta, &squared_link, g)
            },
            (Some(v), 1) => unsafe {
                variant(*v, black_box(&xt32), &targets, &theta, &squared_link, g)
            },
            (Some(v), 2) => unsafe {
                variant(*v, black_box(&xt64), &labels, &theta, &logistic_link, g)
            },
            (Some(v), _) => unsafe {
                variant(*v, black_box(&xt32), &labels, &theta, &logistic_link, g)
            },
        }
    };
    // bits check
    for which in 0..4 {
        let mut g0 = vec![0.0; D];
        let l0 = run_one(&None, which, &mut g0);
        for (name, v) in &variants[1..] {
            let mut g1 = vec![0.0; D];
            let l1 = run_one(v, which, &mut g1);
            assert!(
                l0.to_bits() == l1.to_bits() && g0 == g1,
                "{name} differs on case {which}"
            );
        }
    }
    let mut times = vec![vec![Vec::new(); 4]; variants.len()];
    let mut g = vec![0.0; D];
    for _ in 0..rounds {
        for which in 0..4 {
            for (k, (_, v)) in variants.iter().enumerate() {
                let mut t = Vec::new();
                for _ in 0..passes {
                    let c = Instant::now();
                    black_box(run_one(v, which, &mut g));
                    t.push(c.elapsed().as_secs_f64());
                }
                times[k][which].push(median(&mut t));
            }
        }
    }
    println!("rows {rows}: ns per row (GB/s) for LS f64 | LS f32 | logistic f64 | logistic f32");
    for (k, (name, _)) in variants.iter().enumerate() {
        let mut line = format!("{name:>14}:");
        for which in 0..4 {
            let s = median(&mut times[k][which]);
            let b = if which % 2 == 0 { 8 * D + 8 } else { 4 * D + 8 } * rows;
            line += &format!(
                " {:6.1} ({:5.1})",
                s * 1e9 / rows as f64,
                b as f64 / s * 1e-9
            );
        }
        println!("{line}");
    }
}

/// Out of cache: 2 threads over chunks of 1024 rows (as `DataTasks`), against a
/// read-only sum over the f64 samples, interleaved round by round.
fn ooc(args: &[String]) {
    use rayon::prelude::*;
    let chunks: usize = args.first().map_or(256, |v| v.parse().unwrap());
    let rounds: usize = args.get(1).map_or(7, |v| v.parse().unwrap());
    let spec = args.get(2).cloned().unwrap_or_else(|| "cur,np-nopf".into());
    let rows = 1024;
    let n = chunks * rows * D;
    let mut xt64 = taskrobust::linalg::memory::zeroed_for_streaming(n);
    xt64.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, block)| {
            for (k, v) in block.iter_mut().enumerate() {
                *v = (((c * 65536 + k) as f64) * 0.7548776662).fract() - 0.5;
            }
        });
    let xt32: Vec<f32> = xt64.par_iter().map(|&v| v as f32).collect();
    let targets: Vec<f64> = (0..chunks * rows)
        .map(|j| ((j as f64) * 0.37).fract() - 0.5)
        .collect();
    let labels: Vec<f64> = targets
        .iter()
        .map(|&v| if v < 0.0 { -1.0 } else { 1.0 })
        .collect();
    let theta: Vec<f64> = (0..D).map(|k| 0.01 * ((k as f64) * 0.3).sin()).collect();
    let mut variants: Vec<(String, Option<Variant>)> = vec![("library".into(), None)];
    let base = Variant {
        pipeline: true,
        hint: 1,
        dist: 2,
        stride: 64,
        pair: false,
        fuse: false,
    };
    for name in spec.split(',') {
        if name == "lib" {
            variants.push((name.to_string(), None));
            continue;
        }
        let mut v = base;
        for part in name.split('-') {
            match part {
                "cur" => {}
                "np" => v.pipeline = false,
                "nopf" => v.hint = 0,
                "fuse" => {
                    v.fuse = true;
                    v.pipeline = false;
                }
                "pair" => {
                    v.pair = true;
                    v.pipeline = false;
                }
                p if p.starts_with('t') => {
                    let (h, dd) = p[1..].split_once('d').unwrap();
                    v.hint = match h {
                        "0" => 1,
                        "1" => 2,
                        _ => 3,
                    };
                    v.dist = dd.parse().unwrap();
                }
                p if p.starts_with('s') => v.stride = p[1..].parse().unwrap(),
                other => panic!("{other}"),
            }
        }
        variants.push((name.to_string(), Some(v)));
    }
    let pass = |v: &Option<Variant>, which: usize| -> f64 {
        (0..chunks)
            .into_par_iter()
            .map(|c| {
                let mut g = vec![0.0; D];
                let ys = if which < 2 { &targets } else { &labels };
                let y = &ys[c * rows..(c + 1) * rows];
                let (a, b) = (c * rows * D, (c + 1) * rows * D);
                let l = match (v, which) {
                    (None, 0) => fused_rows(&xt64[a..b], y, &theta, &squared_link, &mut g),
                    (None, 1) => fused_rows(&xt32[a..b], y, &theta, &squared_link, &mut g),
                    (None, 2) => fused_rows(&xt64[a..b], y, &theta, &logistic_link, &mut g),
                    (None, _) => fused_rows(&xt32[a..b], y, &theta, &logistic_link, &mut g),
                    (Some(v), 0) => unsafe {
                        variant(*v, &xt64[a..b], y, &theta, &squared_link, &mut g)
                    },
                    (Some(v), 1) => unsafe {
                        variant(*v, &xt32[a..b], y, &theta, &squared_link, &mut g)
                    },
                    (Some(v), 2) => unsafe {
                        variant(*v, &xt64[a..b], y, &theta, &logistic_link, &mut g)
                    },
                    (Some(v), _) => unsafe {
                        variant(*v, &xt32[a..b], y, &theta, &logistic_link, &mut g)
                    },
                };
                l + g[0]
            })
            .sum()
    };
    let read = || -> f64 {
        xt64.par_chunks(1 << 16)
            .map(|x| {
                let mut lanes = [0.0f64; 8];
                for block in x.chunks_exact(8) {
                    for (lane, v) in lanes.iter_mut().zip(block) {
                        *lane += v;
                    }
                }
                lanes.iter().sum::<f64>()
            })
            .sum()
    };
    black_box(read());
    let mut read_t = Vec::new();
    let mut times = vec![vec![Vec::new(); 4]; variants.len()];
    for _ in 0..rounds {
        let c = Instant::now();
        black_box(read());
        read_t.push(c.elapsed().as_secs_f64());
        for which in 0..4 {
            for (k, (_, v)) in variants.iter().enumerate() {
                let c = Instant::now();
                black_box(pass(v, which));
                times[k][which].push(c.elapsed().as_secs_f64());
            }
        }
    }
    let read_s = median(&mut read_t);
    let bw = (8 * n) as f64 / read_s;
    println!("ooc: {} MB f64, {} threads, read-only {:.1} GB/s; % of read-only (ms) for LS f64 | LS f32 | logistic f64 | logistic f32", 8 * n / 1_000_000, rayon::current_num_threads(), bw * 1e-9);
    for (k, (name, _)) in variants.iter().enumerate() {
        let mut line = format!("{name:>14}:");
        for which in 0..4 {
            let s = median(&mut times[k][which]);
            let b = (if which % 2 == 0 { 8 * D + 8 } else { 4 * D + 8 } * rows * chunks) as f64;
            line += &format!(" {:5.1}% ({:6.2})", 100.0 * b / s / bw, s * 1e3);
        }
        println!("{line}");
    }
}
