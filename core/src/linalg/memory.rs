//! Storage for large task data.
//!
//! The data passes stream hundreds of megabytes per iteration. On 4 KiB pages
//! every page is a TLB miss, and the hardware prefetchers stop at each page
//! boundary; 2 MiB pages remove both. Linux hands out transparent huge pages
//! on request only (`madvise` mode is the common default), so large buffers
//! ask for them before their first touch, as NumPy does for its arrays.
//!
//! Data read only a few times (the least-squares Gram form reads each sample
//! in its set-up and at the final point) is instead mapped from its `.npy`
//! file ([`Values::Mapped`]): no copy, no zeroing, and the page cache's pages
//! are shared, not duplicated. A mapping must not change underneath us: the
//! data files must not be modified while a run reads them (as for NumPy's
//! `mmap_mode`). Data that the passes stream hundreds of times is copied onto
//! huge pages ([`Values::into_resident`]).

use crate::error::InputError;
use crate::linalg::element::Element;
use std::fs::File;
use std::marker::PhantomData;
use std::sync::Arc;

/// Buffers below this size stay on ordinary pages (no whole huge page inside).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A zero-filled vector of `count` values, backed by transparent huge pages
/// where the operating system provides them. The values are identical either
/// way; only the page size differs.
pub fn zeroed_for_streaming(count: usize) -> Vec<f64> {
    zeroed_values(count)
}

/// [`zeroed_for_streaming`] for either stored type.
pub fn zeroed_values<T: Element>(count: usize) -> Vec<T> {
    let data = vec![T::default(); count];
    advise_huge_pages(&data);
    data
}

/// Stored values (f64 unless said otherwise): owned (on huge pages where
/// large), mapped read-only from a file, or shared with their owner (a host
/// language's array).
#[derive(Clone)]
pub enum Values<T: Element = f64> {
    /// Values in memory of their own.
    Owned(Vec<T>),
    /// Values mapped read-only from a file.
    Mapped(Arc<MappedValues<T>>),
    /// Values in memory someone else owns, read in place (the Python
    /// bindings lend NumPy arrays this way); writing copies them first.
    Shared(Arc<dyn SharedValues<T>>),
}

/// Read-only values that live elsewhere. The implementor keeps them alive
/// and unchanged for as long as it lives (the Python bindings hold the NumPy
/// array and lock it against writes through its writeable flag).
pub trait SharedValues<T = f64>: Send + Sync {
    /// The values, in place.
    fn as_slice(&self) -> &[T];
}

/// `count` little-endian values at byte `offset` of a read-only file mapping.
pub struct MappedValues<T: Element = f64> {
    map: memmap2::Mmap,
    offset: usize,
    count: usize,
    kind: PhantomData<T>,
}

impl<T: Element> MappedValues<T> {
    /// Maps `count` values starting at byte `offset` of `file`. `None` where
    /// the bytes cannot serve as values in place: a big-endian machine, an
    /// offset that is not a multiple of the value size, or a failed `mmap`
    /// (the caller then reads the file instead).
    pub fn map(file: &File, offset: usize, count: usize) -> Option<Self> {
        let size = std::mem::size_of::<T>();
        if cfg!(target_endian = "big") || !offset.is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        let bytes = count.checked_mul(size)?.checked_add(offset)?;
        // A mapping may reach past the end of the file, but touching that part
        // is a SIGBUS: map only what the file holds.
        if file.metadata().ok()?.len() < bytes as u64 {
            return None;
        }
        // SAFETY: the mapping is read-only; the module's contract (documented
        // above and in README) is that data files are not modified while they
        // are read.
        let map = unsafe { memmap2::MmapOptions::new().len(bytes).map(file) }.ok()?;
        Some(Self {
            map,
            offset,
            count,
            kind: PhantomData,
        })
    }

    /// The mapped values, in place.
    pub fn as_slice(&self) -> &[T] {
        let size = std::mem::size_of::<T>();
        let bytes = &self.map[self.offset..self.offset + self.count * size];
        // SAFETY: the mapping is page-aligned and `offset` a multiple of the
        // value's alignment, so the pointer is aligned for T (f64 or f32);
        // every bit pattern is a valid value, and the length is in bounds
        // (checked in `map`). Little-endian only.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), self.count) }
    }
}

impl<T: Element> Values<T> {
    /// The values, read-only (a mapping is not copied).
    pub fn as_slice(&self) -> &[T] {
        match self {
            Values::Owned(v) => v,
            Values::Mapped(m) => m.as_slice(),
            Values::Shared(s) => s.as_slice(),
        }
    }

    /// The values, writable: mapped or shared values are first copied (copy on write).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Values::Mapped(m) => *self = Values::Owned(copy_values(m.as_slice())),
            Values::Shared(s) => *self = Values::Owned(copy_values(s.as_slice())),
            Values::Owned(_) => {}
        }
        match self {
            Values::Owned(v) => v,
            _ => unreachable!("copied above"),
        }
    }

    /// Whether the values are mapped from a file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Values::Mapped(_))
    }

    /// Values in memory: a mapping is copied onto huge pages; owned and
    /// shared values (already in memory) are kept.
    pub fn into_resident(self) -> Self {
        match self {
            Values::Mapped(m) => Values::Owned(copy_values(m.as_slice())),
            owned => owned,
        }
    }
}

impl<T: Element> std::fmt::Debug for Values<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Values::Owned(_) => "Owned",
            Values::Mapped(_) => "Mapped",
            Values::Shared(_) => "Shared",
        };
        f.debug_tuple(kind).field(&self.as_slice()).finish()
    }
}

impl<T: Element> PartialEq for Values<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// A copy of `values` on huge pages (see [`zeroed_for_streaming`]).
pub fn copy_for_streaming(values: &[f64]) -> Vec<f64> {
    copy_values(values)
}

/// [`copy_for_streaming`] for either stored type.
pub fn copy_values<T: Element>(values: &[T]) -> Vec<T> {
    let mut copy = zeroed_values(values.len());
    copy.copy_from_slice(values);
    copy
}

/// The values widened to f64 (exact), on huge pages where large.
pub fn widen_values<T: Element>(values: &[T]) -> Vec<f64> {
    let mut wide = zeroed_for_streaming(values.len());
    for (w, v) in wide.iter_mut().zip(values) {
        *w = v.widen();
    }
    wide
}

/// Bytes of memory this process may still allocate: `MemAvailable` from
/// `/proc/meminfo` (Linux), else the physical memory, else unknown.
pub fn available_bytes() -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kib| kib.saturating_mul(1024))
        };
        if let Some(bytes) = field("MemAvailable:").or_else(|| field("MemTotal:")) {
            return Some(bytes);
        }
    }
    physical_bytes()
}

#[cfg(target_os = "linux")]
fn physical_bytes() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| (pages as u64).saturating_mul(size as u64))
}

#[cfg(not(target_os = "linux"))]
fn physical_bytes() -> Option<u64> {
    None
}

/// Gigabytes, for messages.
pub fn gigabytes(bytes: f64) -> String {
    format!("{:.1} GB", bytes / 1e9)
}

/// Checks a request for `bytes` of memory before it is made (the product of
/// user-given sizes, computed in f64 so that it cannot wrap). `field` is the
/// option or key that asked for it, `what` says how it is sized. Refused
/// where it overflows usize or exceeds the memory available now.
pub fn check_request(field: &str, bytes: f64, what: &str) -> Result<(), InputError> {
    if bytes.is_nan() || bytes > usize::MAX as f64 {
        return Err(InputError::new(
            field,
            format!("asks for {what}: more than 2^64 bytes (the size overflows usize)"),
        ));
    }
    if let Some(available) = available_bytes() {
        if bytes > available as f64 {
            return Err(InputError::new(
                field,
                format!(
                    "asks for {what}: needs {} of memory, {} is available",
                    gigabytes(bytes),
                    gigabytes(available as f64)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(data: &[T]) {
    let start = data.as_ptr() as usize;
    let end = start + std::mem::size_of_val(data);
    // Only whole huge pages inside the buffer: madvise needs an aligned start,
    // and memory outside the buffer belongs to the allocator.
    let first = start.next_multiple_of(HUGE_PAGE_BYTES);
    let last = end - end % HUGE_PAGE_BYTES;
    if last > first {
        // SAFETY: [first, last) lies inside `data`'s allocation; MADV_HUGEPAGE
        // changes how the range is backed, never its contents. A failure (no
        // THP support) leaves ordinary pages, which is fine.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_data: &[T]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_at_every_size() {
        for count in [0, 1, 1000, (HUGE_PAGE_BYTES / 8) * 3 + 17] {
            let data = zeroed_for_streaming(count);
            assert_eq!(data.len(), count);
            assert!(data.iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn mapped_values_read_the_file_and_copy_on_write() {
        use std::io::Write;
        let dir = crate::files::test_dir::TestDir::new("mapped-values");
        let path = dir.path().join("values.bin");
        let values: Vec<f64> = (0..1000).map(|i| i as f64 * 0.5 - 7.0).collect();
        let mut file = File::create(&path).unwrap();
        file.write_all(&[0u8; 16]).unwrap();
        for v in &values {
            file.write_all(&v.to_le_bytes()).unwrap();
        }
        drop(file);
        let file = File::open(&path).unwrap();
        assert!(
            MappedValues::<f64>::map(&file, 4, values.len()).is_none(),
            "misaligned offset"
        );
        assert!(
            MappedValues::<f64>::map(&file, 16, values.len() + 1).is_none(),
            "past the end"
        );
        let Some(mapped) = MappedValues::<f64>::map(&file, 16, values.len()) else {
            return; // big-endian or no mmap: the callers read instead
        };
        let mut shared = Values::Mapped(Arc::new(mapped));
        assert_eq!(shared.as_slice(), &values[..]);
        let resident = shared.clone().into_resident();
        assert!(!resident.is_mapped());
        assert_eq!(resident, shared);
        shared.as_mut_slice()[3] = 42.0;
        assert!(!shared.is_mapped());
        assert_eq!(shared.as_slice()[3], 42.0);
        assert_eq!(resident.as_slice()[3], values[3], "the copy is separate");
    }
}
