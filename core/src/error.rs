//! Errors. Invalid input is an [`InputError`] naming the offending field; the
//! CLI maps it to exit status 2 with one line on stderr.

use crate::linalg::element::Element;
use thiserror::Error;

/// Bad user input: a file, a shape, a value or a parameter.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{field}: {message}")]
pub struct InputError {
    /// The file, JSON field or option at fault, e.g. `tasks[3].a` or `--mu`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InputError {
    /// An error naming `field` with `message`.
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
pub fn check_finite<T: Element>(field: &str, values: &[T]) -> Result<(), InputError> {
    match first_non_finite(values) {
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

/// An integer whose top bit is set iff `v` is NaN or infinite:
/// `(bits & EXPONENT) + 2^52` carries into bit 63 iff the exponent is all
/// ones. OR-ed over many values it vectorises, unlike `is_finite` branches;
/// test the result with [`any_non_finite`].
#[inline]
pub fn non_finite_flag(v: f64) -> u64 {
    const EXPONENT: u64 = 0x7FF0_0000_0000_0000;
    (v.to_bits() & EXPONENT) + (1 << 52)
}

/// Whether OR-ed [`non_finite_flag`]s saw a NaN or infinity.
#[inline]
pub fn any_non_finite(flags: u64) -> bool {
    flags >> 63 != 0
}

/// Index of the first NaN or infinity. Checks blocks with integer bit tests
/// that vectorise (data files are large), then locates the value.
pub fn first_non_finite<T: Element>(values: &[T]) -> Option<usize> {
    const BLOCK: usize = 4096;
    for (b, block) in values.chunks(BLOCK).enumerate() {
        let flags = block
            .iter()
            .fold(0u64, |acc, &v| acc | non_finite_flag(v.widen()));
        if any_non_finite(flags) {
            return block
                .iter()
                .position(|v| !v.widen().is_finite())
                .map(|k| b * BLOCK + k);
        }
    }
    None
}

/// Any failure of a library call: bad input (exit status 2 in the CLI) or a
/// failure inside a solver or while writing results (exit status 1).
#[derive(Debug, Error)]
pub enum Error {
    /// Bad user input (exit status 2 in the CLI).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A failure inside a solver (exit status 1).
    #[error("{0}")]
    Solver(String),
    /// A failure of the device that evaluates the tasks (a GPU family's CUDA
    /// error; exit status 1), kept as the source.
    #[error("device: {0}")]
    Device(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A failure while reading or writing results (exit status 1), with what
    /// was being done (the file, or empty) and its cause, kept as the source.
    #[error("{}", with_context(context, source.as_ref()))]
    Io {
        /// What was being done: usually the file's path (may be empty).
        context: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

fn with_context(context: &str, source: &(dyn std::error::Error + Send + Sync)) -> String {
    if context.is_empty() {
        source.to_string()
    } else {
        format!("{context}: {source}")
    }
}

impl Error {
    /// An [`Error::Io`]: `context` (a path, or empty) and the cause, which may
    /// be any error (kept as the source) or a message.
    pub fn io(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

impl From<argmin::core::Error> for Error {
    fn from(e: argmin::core::Error) -> Self {
        // A solver passes the crate's own errors through argmin's: unwrap them.
        let e = match e.downcast::<Error>() {
            Ok(own) => return own,
            Err(other) => other,
        };
        match e.downcast::<InputError>() {
            Ok(input) => Error::Input(input),
            Err(other) => Error::Solver(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::io("", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_finite_finds_every_kind_at_every_position() {
        let mut values = vec![1.5f64; 10_000];
        assert_eq!(first_non_finite(&values), None);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 4095, 4096, 9999] {
                values[at] = bad;
                assert_eq!(first_non_finite(&values), Some(at));
                values[at] = -f64::MAX;
            }
        }
        assert_eq!(first_non_finite(&values), None);
        let err = check_finite("x", &[0.0, f64::NAN]).unwrap_err();
        assert_eq!(err.field, "x");
        assert!(err.message.contains("entry 1 is NaN"), "{err}");
    }
}
