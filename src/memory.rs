//! Storage for large task data.
//!
//! The data passes stream hundreds of megabytes per iteration. On 4 KiB pages
//! every page is a TLB miss, and the hardware prefetchers stop at each page
//! boundary; 2 MiB pages remove both. Linux hands out transparent huge pages
//! on request only (`madvise` mode is the common default), so large buffers
//! ask for them before their first touch, as NumPy does for its arrays.

/// Buffers below this size stay on ordinary pages (no whole huge page inside).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A zero-filled vector of `count` values, backed by transparent huge pages
/// where the operating system provides them. The values are identical either
/// way; only the page size differs.
pub fn zeroed_for_streaming(count: usize) -> Vec<f64> {
    let data = vec![0.0f64; count];
    advise_huge_pages(&data);
    data
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(data: &[f64]) {
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
fn advise_huge_pages(_data: &[f64]) {}

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
}
