//! The GPU backend (feature `gpu`): least-squares and logistic task families
//! whose data live on a CUDA device in f64, evaluated with cuBLAS GEMV/GEMM
//! and a few NVRTC kernels, behind the same [`TaskFamily`](crate::TaskFamily)
//! trait the CPU families implement -- so the same solvers drive both.
//!
//! The module exists without the feature too: [`open_device`] then reports
//! "no CUDA device" (exit status 2 in the CLI), and the CPU side of the
//! cross-checks (the lab crate's `gpu-check`) still builds and is tested.
//!
//! cudarc loads libcuda, libnvrtc and libcublas at run time
//! (`dynamic-loading`), and panics when a library it needs is missing, so
//! [`CudaLibraries::require`] looks for all three before any CUDA call.

pub mod kernels;

#[cfg(feature = "gpu")]
mod device;
#[cfg(feature = "gpu")]
mod family;

#[cfg(feature = "gpu")]
pub use device::GpuDevice;
#[cfg(feature = "gpu")]
pub use family::{GpuData, GpuLeastSquares, GpuLogistic, GradientKernel};

use crate::error::InputError;
use serde::Serialize;
use thiserror::Error;

/// Failures of the GPU path. `NoDevice` and `Input` are the user's to fix
/// (exit status 2); `Cuda` and `Io` are failures during a run (exit status 1).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GpuError {
    /// No usable CUDA device: the feature is off, a library is missing, or
    /// the driver reports no device.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A CUDA, cuBLAS or NVRTC call failed after the device was opened.
    #[error("CUDA error: {0}")]
    Cuda(String),
    /// Bad user input (exit status 2).
    #[error(transparent)]
    Input(#[from] InputError),
    /// An I/O failure during a run (exit status 1).
    #[error("{0}")]
    Io(String),
}

impl GpuError {
    /// The exit status the CLI uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            GpuError::NoDevice(_) | GpuError::Input(_) => 2,
            GpuError::Cuda(_) | GpuError::Io(_) => 1,
        }
    }

    /// Whether this is [`GpuError::NoDevice`].
    pub fn is_no_device(&self) -> bool {
        matches!(self, GpuError::NoDevice(_))
    }

    /// Wraps any CUDA-side error with what was being done.
    pub fn cuda(context: &str, error: impl std::fmt::Debug) -> Self {
        GpuError::Cuda(format!("{context}: {error:?}"))
    }
}

impl From<crate::Error> for GpuError {
    /// A device error that went through the task-family interface comes back
    /// as itself; anything else from the device path is a run-time failure.
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Device(source) => match source.downcast::<GpuError>() {
                Ok(gpu) => *gpu,
                Err(other) => GpuError::Cuda(other.to_string()),
            },
            crate::Error::Input(input) => GpuError::Input(input),
            other => GpuError::Cuda(other.to_string()),
        }
    }
}

impl From<std::io::Error> for GpuError {
    fn from(e: std::io::Error) -> Self {
        GpuError::Io(e.to_string())
    }
}

/// What the device says about itself.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceInfo {
    /// The device's name, as the driver reports it.
    pub name: String,
    /// The CUDA device index it was opened with.
    pub ordinal: usize,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Number of streaming multiprocessors.
    pub multiprocessors: i32,
    /// Total device memory in bytes.
    pub total_memory_bytes: usize,
    /// Peak memory clock in kHz, where the driver reports it.
    pub memory_clock_khz: Option<i64>,
    /// Global memory bus width in bits, where the driver reports it.
    pub memory_bus_width_bits: Option<i64>,
    /// `2 * clock * bus width / 8` (double data rate), bytes/s.
    pub peak_bandwidth_bytes_per_s: Option<f64>,
    /// The virtual architecture the kernels were compiled for (e.g.
    /// `compute_90`), chosen from the compute capability at run time.
    pub kernel_arch: String,
}

/// Which of the shared libraries the GPU path loads at run time are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CudaLibraries {
    /// The driver library (libcuda).
    pub driver: bool,
    /// The runtime compiler library (libnvrtc).
    pub nvrtc: bool,
    /// The cuBLAS library (libcublas).
    pub cublas: bool,
    /// Whether this binary was built with the `gpu` feature at all.
    pub feature: bool,
}

impl CudaLibraries {
    /// Looks for the libraries (by the names cudarc tries, on the loader's path).
    pub fn detect() -> Self {
        #[cfg(feature = "gpu")]
        {
            // SAFETY: these only try to dlopen the libraries (and drop the
            // handles); no symbol is called.
            unsafe {
                Self {
                    driver: cudarc::driver::sys::is_culib_present(),
                    nvrtc: cudarc::nvrtc::sys::is_culib_present(),
                    cublas: cudarc::cublas::sys::is_culib_present(),
                    feature: true,
                }
            }
        }
        #[cfg(not(feature = "gpu"))]
        {
            Self {
                driver: false,
                nvrtc: false,
                cublas: false,
                feature: false,
            }
        }
    }

    /// The names of the libraries that are missing.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.driver {
            missing.push("libcuda");
        }
        if !self.nvrtc {
            missing.push("libnvrtc");
        }
        if !self.cublas {
            missing.push("libcublas");
        }
        missing
    }

    /// `Ok` when the feature is on and all three libraries load; otherwise
    /// the "no CUDA device" error saying what is missing.
    pub fn require(&self) -> Result<(), GpuError> {
        if !self.feature {
            return Err(GpuError::NoDevice(
                "this binary was built without the `gpu` feature (cargo build --release --features gpu)".into(),
            ));
        }
        let missing = self.missing();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(GpuError::NoDevice(format!(
                "{} not found (install the NVIDIA driver and CUDA 13 libraries, or add their folder to LD_LIBRARY_PATH)",
                missing.join(", ")
            )))
        }
    }
}

/// Opens CUDA device `ordinal` after checking that the libraries are
/// present; "no CUDA device" where they are not or the driver sees none.
#[cfg(feature = "gpu")]
pub fn open_device(ordinal: usize) -> Result<std::sync::Arc<GpuDevice>, GpuError> {
    GpuDevice::open(ordinal)
}

/// Without the `gpu` feature there is never a device.
#[cfg(not(feature = "gpu"))]
pub fn open_device(_ordinal: usize) -> Result<std::convert::Infallible, GpuError> {
    // require() always fails without the feature; the fallback keeps this panic-free.
    CudaLibraries::detect().require()?;
    Err(GpuError::NoDevice("built without the `gpu` feature".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_libraries_give_no_device_with_exit_status_2() {
        let none = CudaLibraries {
            driver: false,
            nvrtc: true,
            cublas: false,
            feature: true,
        };
        let err = none.require().unwrap_err();
        assert!(err.is_no_device());
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.starts_with("no CUDA device"), "{text}");
        assert!(
            text.contains("libcuda") && text.contains("libcublas") && !text.contains("libnvrtc"),
            "{text}"
        );
    }

    #[test]
    fn all_libraries_present_passes_the_check() {
        let all = CudaLibraries {
            driver: true,
            nvrtc: true,
            cublas: true,
            feature: true,
        };
        assert_eq!(all.require(), Ok(()));
        let no_feature = CudaLibraries {
            feature: false,
            ..all
        };
        assert!(no_feature
            .require()
            .unwrap_err()
            .to_string()
            .contains("without the `gpu` feature"));
    }

    #[test]
    fn opening_a_device_never_panics() {
        // On a machine without CUDA this is the error path; with a device it opens.
        match open_device(0) {
            Err(e) => {
                eprintln!("no device here (expected without CUDA): {e}");
                assert!(e.is_no_device(), "{e}");
                assert_eq!(e.exit_code(), 2);
            }
            #[allow(unreachable_patterns)]
            Ok(_device) => eprintln!("a CUDA device is present"),
        }
    }
}
