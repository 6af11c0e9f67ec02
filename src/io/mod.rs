//! File input and output: problem files, `.npy`/`.csv` data, atomic writes.
//!
//! Every reader reports bad input as an [`InputError`] whose field names the
//! file (and the JSON field that pointed to it); every writer goes through a
//! temp file and a rename, so no output is ever left half-written.

mod csv;
mod npy;
mod problem;
pub mod strict_json;

pub use self::csv::{read_csv, read_csv_typed, CsvTable};
pub use npy::{
    read_npy, read_npy_typed, read_npy_values, write_npy, write_npy_matrix, write_npy_transposed,
    write_npy_typed, write_npy_vector, NpyArray, NpyValues,
};
pub use problem::{
    check_overflow, export_data_problem, export_data_problem_as, export_quadratic_problem,
    load_problem, FamilyKind, LoadedProblem,
};
pub use taskrobust::files::{
    write_atomic, write_atomic_with, write_json_atomic, write_text_atomic,
};

use crate::error::InputError;
use crate::family::Samples;
use crate::memory::Values;
use nalgebra::DVector;
use std::io;
use std::path::Path;
use taskrobust::linalg::element::{Dtype, Element};

/// The data file formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Npy,
    Csv,
}

impl DataFormat {
    /// `.npy` or `.csv` (any case); `None` for anything else.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "npy" => Some(Self::Npy),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// One-line description of a failed read, without the OS error noise for
/// the common cases.
pub(crate) fn read_error(field: &str, e: &io::Error) -> InputError {
    let message = match e.kind() {
        io::ErrorKind::NotFound => "file not found".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::UnexpectedEof => "is truncated".to_string(),
        _ => format!("cannot read: {e}"),
    };
    InputError::new(field, message)
}

/// The size of a regular file. Devices, pipes and folders are refused
/// before they are read: `/dev/zero` would never end.
pub(crate) fn regular_file_size(path: &Path, field: &str) -> Result<u64, InputError> {
    let meta = std::fs::metadata(path).map_err(|e| read_error(field, &e))?;
    if meta.is_dir() {
        return Err(InputError::new(field, "is a folder, not a file"));
    }
    if !meta.is_file() {
        return Err(InputError::new(
            field,
            "is not a regular file (a device, pipe or socket); name a file",
        ));
    }
    Ok(meta.len())
}

fn format_of(path: &Path, field: &str) -> Result<DataFormat, InputError> {
    DataFormat::of(path).ok_or_else(|| {
        InputError::new(
            field,
            "has an unsupported extension; data files must end in .npy or .csv",
        )
    })
}

/// Rejects the first NaN or infinity of an `n x d` C-order array.
fn check_finite_entries<T: Element>(
    field: &str,
    data: &[T],
    cols: usize,
) -> Result<(), InputError> {
    match crate::error::first_non_finite(data) {
        None => Ok(()),
        Some(k) => {
            let at = match k.checked_div(cols) {
                None => format!("[{k}]"),
                Some(row) => format!("[{row}, {}]", k % cols),
            };
            Err(InputError::new(
                field,
                format!(
                    "entry {at} is {} (NaN or infinite values are not allowed)",
                    data[k]
                ),
            ))
        }
    }
}

/// Reads an `n x d` design matrix (one sample per row) from `.npy` or
/// `.csv` and returns it transposed, `d x n` with one sample per column --
/// the layout of [`TaskData::xt`](crate::family::TaskData). The file's
/// values become the matrix storage without a copy; with `map`, a large
/// `.npy` payload is mapped from the file instead of read (see
/// [`crate::memory`]). Finiteness is checked where the tasks are validated
/// ([`crate::family::DataTasks::new`]), which reports `[row, column]`.
pub fn read_samples(path: &Path, field: &str, map: bool) -> Result<Samples, InputError> {
    read_samples_as(path, field, map, None)
}

/// The stored values of [`read_samples_as`], before their shape is checked.
enum Stored {
    F64(Values<f64>),
    F32(Values<f32>),
}

/// [`read_samples`] with the problem's `"dtype"`: `None` keeps a `.npy`
/// file's own type (f64 or f32) and reads CSV as f64; `Some(dtype)` reads
/// CSV as that type and refuses a `.npy` file of the other type. f32 data
/// stay f32 in memory.
pub fn read_samples_as(
    path: &Path,
    field: &str,
    map: bool,
    dtype: Option<Dtype>,
) -> Result<Samples, InputError> {
    let (rows, cols, values) = match format_of(path, field)? {
        DataFormat::Npy => {
            let (shape, values) = read_npy_typed(path, field, map, dtype)?;
            let values = match values {
                NpyValues::F64(v) => Stored::F64(v),
                NpyValues::F32(v) => Stored::F32(v),
            };
            let [rows, cols] = shape[..] else {
                return Err(InputError::new(
                    field,
                    format!(
                        "must be a 2-D array (samples x features), got {} dimension(s) {:?}",
                        shape.len(),
                        shape
                    ),
                ));
            };
            (rows, cols, values)
        }
        DataFormat::Csv => match dtype.unwrap_or_default() {
            Dtype::F64 => {
                let table = read_csv_typed::<f64>(path, field)?;
                (
                    table.rows,
                    table.cols,
                    Stored::F64(Values::Owned(table.data)),
                )
            }
            Dtype::F32 => {
                let table = read_csv_typed::<f32>(path, field)?;
                (
                    table.rows,
                    table.cols,
                    Stored::F32(Values::Owned(table.data)),
                )
            }
        },
    };
    if rows == 0 || cols == 0 {
        return Err(InputError::new(
            field,
            format!("is empty ({rows} rows, {cols} columns)"),
        ));
    }
    Ok(match values {
        Stored::F64(v) => Samples::new(cols, rows, v),
        Stored::F32(v) => Samples::new_f32(cols, rows, v),
    })
}

/// Reads a vector from `.npy` (a 1-D array) or `.csv` (one number per
/// line, or one line of numbers).
pub fn read_vector(path: &Path, field: &str) -> Result<DVector<f64>, InputError> {
    read_vector_as(path, field, None)
}

/// [`read_vector`] with the problem's `"dtype"` (as in [`read_samples_as`]);
/// f32 values are widened (exactly) to f64: a vector is 1/d of the data.
pub fn read_vector_as(
    path: &Path,
    field: &str,
    dtype: Option<Dtype>,
) -> Result<DVector<f64>, InputError> {
    let data = match format_of(path, field)? {
        DataFormat::Npy => {
            let (shape, values) = read_npy_typed(path, field, false, dtype)?;
            let array = NpyArray {
                shape,
                data: match values.into_f64() {
                    Values::Owned(data) => data,
                    mapped => mapped.as_slice().to_vec(),
                },
            };
            if array.shape.len() != 1 {
                return Err(InputError::new(
                    field,
                    format!(
                        "must be a 1-D array, got shape {:?} (in NumPy: np.save(path, y.ravel()))",
                        array.shape
                    ),
                ));
            }
            check_finite_entries(field, &array.data, 0)?;
            array.data
        }
        DataFormat::Csv => {
            let table = match dtype.unwrap_or_default() {
                Dtype::F64 => read_csv_typed::<f64>(path, field)?,
                Dtype::F32 => {
                    let table = read_csv_typed::<f32>(path, field)?;
                    CsvTable {
                        rows: table.rows,
                        cols: table.cols,
                        data: table.data.iter().map(|v| v.widen()).collect(),
                    }
                }
            };
            if table.rows > 1 && table.cols > 1 {
                return Err(InputError::new(
                    field,
                    format!(
                        "must be one number per line or a single line, got {} lines of {} values",
                        table.rows, table.cols
                    ),
                ));
            }
            table.data
        }
    };
    if data.is_empty() {
        return Err(InputError::new(field, "is empty"));
    }
    Ok(DVector::from_vec(data))
}

#[cfg(test)]
pub(crate) use taskrobust::files::test_dir;

#[cfg(test)]
mod tests {
    use super::test_dir::TestDir;
    use super::*;
    use nalgebra::DMatrix;

    #[test]
    fn samples_come_back_transposed_from_both_formats() {
        let dir = TestDir::new("io-samples");
        let x = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let npy = dir.path().join("x.npy");
        write_npy_matrix(&npy, &x).unwrap();
        let csv = dir.path().join("x.CSV");
        std::fs::write(&csv, "1,2\n3,4\n5,6\n").unwrap();
        for path in [&npy, &csv] {
            for map in [false, true] {
                let xt = read_samples(path, "x", map).unwrap();
                assert_eq!(xt.view(), x.transpose());
                assert!(!xt.is_mapped(), "small files are read");
            }
        }
        // From 1 MiB on, a .npy payload is mapped where asked for.
        let big = DMatrix::from_fn(300, 512, |i, j| (i * 512 + j) as f64 - 0.25);
        let path = dir.path().join("big.npy");
        write_npy_matrix(&path, &big).unwrap();
        let read = read_samples(&path, "x", false).unwrap();
        let mapped = read_samples(&path, "x", true).unwrap();
        assert!(!read.is_mapped());
        assert_eq!(
            mapped.is_mapped(),
            cfg!(all(unix, target_endian = "little"))
        );
        assert_eq!(read.view(), big.transpose());
        assert_eq!(mapped, read);
    }

    #[test]
    fn vectors_from_column_row_and_npy() {
        let dir = TestDir::new("io-vec");
        let expected = DVector::from_vec(vec![1.0, -1.0, 1.0]);
        let column = dir.path().join("c.csv");
        std::fs::write(&column, "1\n-1\n1\n").unwrap();
        let row = dir.path().join("r.csv");
        std::fs::write(&row, "1,-1,1\n").unwrap();
        let npy = dir.path().join("v.npy");
        write_npy_vector(&npy, expected.as_slice()).unwrap();
        for path in [&column, &row, &npy] {
            assert_eq!(read_vector(path, "y").unwrap(), expected);
        }
    }

    #[test]
    fn shape_extension_and_value_errors() {
        let dir = TestDir::new("io-bad");
        let m = dir.path().join("m.npy");
        write_npy_matrix(&m, &DMatrix::from_element(2, 2, 1.0)).unwrap();
        let err = read_vector(&m, "y").unwrap_err();
        assert!(err.message.contains("must be a 1-D array"), "{err}");
        let v = dir.path().join("v.npy");
        write_npy_vector(&v, &[1.0, 2.0]).unwrap();
        let err = read_samples(&v, "x", false).unwrap_err();
        assert!(err.message.contains("must be a 2-D array"), "{err}");
        let err = read_samples(&dir.path().join("x.txt"), "x", false).unwrap_err();
        assert!(err.message.contains("unsupported extension"), "{err}");
        let grid = dir.path().join("g.csv");
        std::fs::write(&grid, "1,2\n3,4\n").unwrap();
        let err = read_vector(&grid, "y").unwrap_err();
        assert!(err.message.contains("2 lines of 2 values"), "{err}");
        let empty = dir.path().join("e.csv");
        std::fs::write(&empty, "\n").unwrap();
        assert!(read_samples(&empty, "x", false)
            .unwrap_err()
            .message
            .contains("is empty"));
        assert!(read_vector(&empty, "y")
            .unwrap_err()
            .message
            .contains("is empty"));
    }
}
