//! NumPy arrays in and out. A C-contiguous float64 array is lent to the core
//! crate as it is ([`Values::Shared`]); any other layout or dtype is copied
//! once into a new C-contiguous float64 array, which is then lent the same way.

use numpy::{PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use taskrobust::linalg::memory::{SharedValues, Values};

/// Arrays copied because of their layout or dtype (read by the tests through
/// `taskrobust._copies()`: C-contiguous float64 input must leave it alone).
pub static COPIES: AtomicU64 = AtomicU64::new(0);

/// A float64 C-contiguous NumPy array, held so that its buffer outlives every
/// core structure reading it.
struct NumpyValues {
    /// Keeps the array (and so its buffer) alive.
    _array: Py<PyAny>,
    data: *const f64,
    len: usize,
}

// SAFETY: the buffer is owned by `_array`, which lives as long as this value;
// it is only read, and NumPy buffers may be read from any thread. The caller's
// contract (documented on `Problem`) is that the array is not written while a
// Problem uses it, as for NumPy's memory-mapped arrays.
unsafe impl Send for NumpyValues {}
// SAFETY: as for Send: shared reads of memory that nobody writes.
unsafe impl Sync for NumpyValues {}

impl SharedValues for NumpyValues {
    fn as_slice(&self) -> &[f64] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `data` points at `len` aligned, initialised f64 values of a
        // C-contiguous array kept alive by `_array` (checked in `lend`).
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// An array as the core reads it: shape and values, lent or copied once.
pub struct Lent {
    pub shape: Vec<usize>,
    pub values: Values,
}

/// `value` as a float64 C-contiguous array of `ndim` dimensions: lent where it
/// already is one, else copied once. `field` names the argument in errors
/// (TypeError for what is not numbers, ValueError for a wrong shape).
pub fn lend(py: Python<'_>, value: &Bound<'_, PyAny>, field: &str, ndim: usize) -> PyResult<Lent> {
    if value.is_none() {
        return Err(PyTypeError::new_err(format!(
            "{field}: must be an array of numbers, got None"
        )));
    }
    let array: Bound<'_, PyArrayDyn<f64>> = match value.cast::<PyArrayDyn<f64>>() {
        Ok(a) if a.is_c_contiguous() && a.is_aligned() => a.clone(),
        _ => {
            let numpy = py.import("numpy")?;
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("dtype", numpy.getattr("float64")?)?;
            let copied = numpy
                .call_method("ascontiguousarray", (value,), Some(&kwargs))
                .map_err(|e| {
                    PyTypeError::new_err(format!(
                        "{field}: must be an array of numbers ({})",
                        e.value(py)
                    ))
                })?;
            COPIES.fetch_add(1, Ordering::Relaxed);
            copied
                .cast::<PyArrayDyn<f64>>()
                .map_err(|_| PyTypeError::new_err(format!("{field}: must be an array of numbers")))?
                .clone()
        }
    };
    let shape = array.shape().to_vec();
    if shape.len() != ndim {
        // The command line's messages for x and y files (io/mod.rs).
        let message = if ndim == 2 {
            format!(
                "must be a 2-D array (samples x features), got {} dimension(s) {:?}",
                shape.len(),
                shape
            )
        } else {
            format!("must be a 1-D array, got shape {shape:?}")
        };
        return Err(PyValueError::new_err(format!("{field}: {message}")));
    }
    let len = shape.iter().product();
    let values = NumpyValues {
        data: array.data() as *const f64,
        len,
        _array: array.into_any().unbind(),
    };
    Ok(Lent {
        shape,
        values: Values::Shared(Arc::new(values)),
    })
}

/// A vector out to Python (a new array).
pub fn vector<'py>(py: Python<'py>, values: &[f64]) -> Bound<'py, PyArray1<f64>> {
    PyArray1::from_slice(py, values)
}

/// Rows of equal length out to Python as a 2-D array (`cols` per row).
pub fn matrix<'py>(
    py: Python<'py>,
    values: Vec<f64>,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let rows = values.len().checked_div(cols).unwrap_or(0);
    PyArray1::from_vec(py, values).reshape([rows, cols])
}

/// A vector in from Python: anything NumPy reads as a 1-D float64 array
/// (copied; vectors are small beside the data).
pub fn read_vector(py: Python<'_>, value: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<f64>> {
    let lent = lend(py, value, field, 1)?;
    Ok(lent.values.as_slice().to_vec())
}
