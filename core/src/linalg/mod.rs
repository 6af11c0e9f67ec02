//! The dense linear algebra under the data passes: runtime-dispatched SIMD
//! kernels (the only `unsafe` outside the GPU FFI), the Gram matrices of the
//! least-squares form, and the storage of large task data.

pub mod element;
pub mod gram;
pub mod kernels;
pub mod memory;
