//! The core's errors as Python exceptions: bad input is a ValueError with
//! the command line's one-line message, the field renamed to the Python
//! argument (`iterations` -> `iters`; a problem built from arrays has no file
//! to name). Other failures are RuntimeErrors.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::PyErr;
use taskrobust::{Error, InputError};

/// The core's option names that differ from `solve`'s keyword arguments.
const ARGUMENTS: [(&str, &str); 1] = [("iterations", "iters")];

/// The one line `taskrobust solve` would print, with Python's names.
pub fn message(e: &InputError) -> String {
    let mut field = e.field.clone();
    let mut text = e.message.clone();
    for (core, python) in ARGUMENTS {
        if field == core {
            field = python.to_string();
        }
        text = text.replace(&format!("`{core}`"), python);
    }
    let prefix = format!("{}: ", crate::problem::ARRAYS);
    if let Some(rest) = field.strip_prefix(&prefix) {
        field = rest.to_string();
    } else if field == crate::problem::ARRAYS {
        field = "problem".to_string();
    }
    text = text.replace(&format!(" of {}", crate::problem::ARRAYS), "");
    format!("{field}: {text}")
}

/// A ValueError for bad input.
pub fn input_error(e: InputError) -> PyErr {
    PyValueError::new_err(message(&e))
}

/// Any core error as a Python exception.
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Input(input) => input_error(input),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
