//! Errors. Invalid input is an [`InputError`] naming the offending field; the
//! CLI maps it to exit status 2 with one line on stderr.

use thiserror::Error;

/// Bad user input: a file, a shape, a value or a parameter.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{field}: {message}")]
pub struct InputError {
    /// The file, JSON field or option at fault, e.g. `tasks[3].a` or `--mu`.
    pub field: String,
    pub message: String,
}

impl InputError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Shorthand used by the checked-parameter builders.
pub fn invalid<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, InputError> {
    Err(InputError::new(field, message))
}

/// Requires a finite, strictly positive value.
pub fn check_positive(field: &str, value: f64) -> Result<f64, InputError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        invalid(
            field,
            format!("must be a finite positive number, got {value}"),
        )
    }
}

/// Requires every value to be finite.
pub fn check_finite(field: &str, values: &[f64]) -> Result<(), InputError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => invalid(
            field,
            format!(
                "entry {i} is {} (NaN or infinite values are not allowed)",
                values[i]
            ),
        ),
    }
}

/// Any failure of a library call: bad input (exit status 2 in the CLI) or a
/// failure inside a solver or while writing results (exit status 1).
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}")]
    Solver(String),
    #[error("{0}")]
    Io(String),
}

impl From<argmin::core::Error> for Error {
    fn from(e: argmin::core::Error) -> Self {
        match e.downcast::<InputError>() {
            Ok(input) => Error::Input(input),
            Err(other) => Error::Solver(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
