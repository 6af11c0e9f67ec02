//! Numeric `.csv` files: no header, comma-separated numbers, one row per line.

use super::read_error;
use crate::error::InputError;
use std::fs::File;
use std::path::Path;
use taskrobust::linalg::element::Element;

/// A rectangular table of finite numbers, row-major (f64 unless said otherwise).
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable<T: Element = f64> {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<T>,
}

/// Reads a numeric table. Blank lines are skipped; every other line must
/// hold the same number of finite numbers. `field` names the file in errors.
pub fn read_csv(path: &Path, field: &str) -> Result<CsvTable, InputError> {
    read_csv_typed(path, field)
}

/// [`read_csv`] into f64 or f32: each number is rounded once, from its text,
/// to the nearest value of that type; one beyond its range is an error.
pub fn read_csv_typed<T: Element>(path: &Path, field: &str) -> Result<CsvTable<T>, InputError> {
    let bad = |message: String| InputError::new(field, message);
    let size = super::regular_file_size(path, field)?;
    // At most one value per two bytes ("0,"), 8 bytes each.
    crate::memory::check_request(field, size as f64 * 4.0, "the values of a CSV file")?;
    let file = File::open(path).map_err(|e| read_error(field, &e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file);
    let mut record = csv::StringRecord::new();
    let mut data = Vec::new();
    let mut rows = 0;
    let mut cols = 0;
    let mut first_line = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e
                    .position()
                    .map(|p| format!("line {}: ", p.line()))
                    .unwrap_or_default();
                return Err(match e.kind() {
                    csv::ErrorKind::Io(io) => read_error(field, io),
                    _ => bad(format!("{at}cannot parse CSV: {e}")),
                });
            }
        }
        let line = record.position().map_or(rows as u64 + 1, |p| p.line());
        if record.iter().all(str::is_empty) && record.len() <= 1 {
            continue;
        }
        if rows == 0 {
            cols = record.len();
            first_line = line;
        } else if record.len() != cols {
            return Err(bad(format!(
                "line {line} has {} values, expected {cols} (as line {first_line}); rows must not be ragged",
                record.len()
            )));
        }
        for (j, text) in record.iter().enumerate() {
            let at = || format!("line {line}, column {}", j + 1);
            let value: T = T::parse_text(text).ok_or_else(|| {
                let hint = if rows == 0 {
                    " (the file must have no header row)"
                } else {
                    ""
                };
                bad(format!("{}: '{text}' is not a number{hint}", at()))
            })?;
            if !value.widen().is_finite() && text.parse::<f64>().is_ok_and(f64::is_finite) {
                return Err(bad(format!(
                    "{}: {text} is beyond the range of {} (the problem's \"dtype\")",
                    at(),
                    T::DTYPE
                )));
            }
            if !value.widen().is_finite() {
                return Err(bad(format!(
                    "{}: {text} is not allowed (NaN or infinite value)",
                    at()
                )));
            }
            data.push(value);
        }
        rows += 1;
    }
    data.shrink_to_fit();
    Ok(CsvTable { rows, cols, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_dir::TestDir;

    fn read_text(dir: &TestDir, text: &str) -> Result<CsvTable, InputError> {
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        read_csv(&path, "t.csv")
    }

    #[test]
    fn reads_tables_with_spaces_blank_lines_and_crlf() {
        let dir = TestDir::new("csv-ok");
        let t = read_text(&dir, "1, 2.5,-3e-2\r\n\n4,5,6\n").unwrap();
        assert_eq!((t.rows, t.cols), (2, 3));
        assert_eq!(t.data, vec![1.0, 2.5, -0.03, 4.0, 5.0, 6.0]);
        let t = read_text(&dir, "1\n-1\n1").unwrap();
        assert_eq!((t.rows, t.cols, t.data), (3, 1, vec![1.0, -1.0, 1.0]));
        let t = read_text(&dir, "").unwrap();
        assert_eq!((t.rows, t.cols), (0, 0));
    }

    #[test]
    fn f32_tables_round_once_and_refuse_values_beyond_f32() {
        let dir = TestDir::new("csv-f32");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "0.1,1.00000005960464477627\n-2,3.4e38\n").unwrap();
        let t = read_csv_typed::<f32>(&path, "t.csv").unwrap();
        assert_eq!(t.data, vec![0.1f32, 1.0 + f32::EPSILON, -2.0, 3.4e38]);
        std::fs::write(&path, "1,2\n3,-1e39\n").unwrap();
        let err = read_csv_typed::<f32>(&path, "t.csv").unwrap_err();
        assert!(
            err.message
                .contains("line 2, column 2: -1e39 is beyond the range of f32"),
            "{err}"
        );
        assert_eq!(read_csv(&path, "t.csv").unwrap().data[3], -1e39);
    }

    #[test]
    fn rejects_ragged_text_and_non_finite() {
        let dir = TestDir::new("csv-bad");
        let err = read_text(&dir, "1,2\n3\n").unwrap_err();
        assert!(
            err.message.contains("line 2 has 1 values, expected 2"),
            "{err}"
        );
        let err = read_text(&dir, "a,b\n1,2\n").unwrap_err();
        assert!(
            err.message
                .contains("line 1, column 1: 'a' is not a number (the file must have no header"),
            "{err}"
        );
        let err = read_text(&dir, "1,2\n3,NaN\n").unwrap_err();
        assert!(
            err.message.contains("line 2, column 2: NaN is not allowed"),
            "{err}"
        );
        let err = read_text(&dir, "1,inf\n").unwrap_err();
        assert!(err.message.contains("inf is not allowed"), "{err}");
        let err = read_text(&dir, "1,,2\n").unwrap_err();
        assert!(
            err.message.contains("column 2: '' is not a number"),
            "{err}"
        );
        assert_eq!(err.field, "t.csv");
        let err = read_csv(&dir.path().join("none.csv"), "none.csv").unwrap_err();
        assert_eq!(err.message, "file not found");
    }
}
