//! `.npy` arrays of little-endian f64 (`'<f8'`) or f32 (`'<f4'`), C order.
//!
//! Reading goes straight from the file into the `Vec<f64>` that becomes the
//! matrix, so loading a data set holds one copy of it; or, where the caller
//! allows it, a large payload is mapped from the file and not copied at all. Writing streams through [`write_atomic_with`](super::write_atomic_with).

use super::read_error;
use crate::error::InputError;
use crate::family::{SampleValues, Samples};
use crate::memory::{MappedValues, Values};
use nalgebra::DMatrix;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use taskrobust::files::write_atomic_with;
use taskrobust::linalg::element::{Dtype, Element};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Values converted per write; large enough that syscalls do not matter.
const CHUNK_VALUES: usize = 1 << 16;

/// An array as stored: `shape` and its values in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// The header fields we need.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads a `'<f8'` or `'<f4'` C-order array, as f64 (f32 values widened,
/// exactly). `field` names the file in errors. Values are not checked for
/// finiteness here (callers report positions).
pub fn read_npy(path: &Path, field: &str) -> Result<NpyArray, InputError> {
    let (shape, values) = read_npy_values(path, field, false)?;
    let data = match values {
        Values::Owned(data) => data,
        mapped => mapped.as_slice().to_vec(),
    };
    Ok(NpyArray { shape, data })
}

/// Payloads from this size on may be mapped instead of read.
const MAP_BYTES: u64 = 1 << 20;

/// The values of a `.npy` file in the type the file stores them in.
#[derive(Debug, PartialEq)]
pub enum NpyValues {
    /// `'<f8'`.
    F64(Values<f64>),
    /// `'<f4'`.
    F32(Values<f32>),
}

impl NpyValues {
    /// The stored type.
    pub fn dtype(&self) -> Dtype {
        match self {
            NpyValues::F64(_) => Dtype::F64,
            NpyValues::F32(_) => Dtype::F32,
        }
    }

    /// The values as f64 (f32 widened exactly; f64 kept as they are).
    pub fn into_f64(self) -> Values {
        match self {
            NpyValues::F64(v) => v,
            NpyValues::F32(v) => Values::Owned(crate::memory::widen_values(v.as_slice())),
        }
    }
}

/// As [`read_npy`], but with `map` a large payload is mapped from the file
/// ([`Values::Mapped`], see [`crate::memory`]) rather than copied. A
/// `'<f4'` file is widened to f64 (see [`read_npy_typed`] to keep it f32).
pub fn read_npy_values(
    path: &Path,
    field: &str,
    map: bool,
) -> Result<(Vec<usize>, Values), InputError> {
    let (shape, values) = read_npy_typed(path, field, map, None)?;
    Ok((shape, values.into_f64()))
}

/// Reads a `'<f8'` or `'<f4'` C-order array, keeping its type. With
/// `expected`, a file of the other type is refused (the problem's `"dtype"`).
pub fn read_npy_typed(
    path: &Path,
    field: &str,
    map: bool,
    expected: Option<Dtype>,
) -> Result<(Vec<usize>, NpyValues), InputError> {
    let bad = |message: String| InputError::new(field, message);
    super::regular_file_size(path, field)?;
    let mut file = File::open(path).map_err(|e| read_error(field, &e))?;
    let file_len = file.metadata().map_err(|e| read_error(field, &e))?.len();
    let not_npy = || bad("is not a .npy file (bad magic bytes or header)".into());
    let mut preamble = [0u8; 8];
    file.read_exact(&mut preamble).map_err(|_| not_npy())?;
    if &preamble[..6] != MAGIC {
        return Err(not_npy());
    }
    let major = preamble[6];
    let header_len = match major {
        1 => {
            let mut len = [0u8; 2];
            file.read_exact(&mut len).map_err(|_| not_npy())?;
            u16::from_le_bytes(len) as usize
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            file.read_exact(&mut len).map_err(|_| not_npy())?;
            u32::from_le_bytes(len) as usize
        }
        v => {
            return Err(bad(format!(
                "has .npy format version {v}, expected 1, 2 or 3"
            )))
        }
    };
    let prefix_len = if major == 1 { 10 } else { 12 };
    if (prefix_len + header_len) as u64 > file_len {
        return Err(bad("is truncated inside its .npy header".into()));
    }
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header)
        .map_err(|e| read_error(field, &e))?;
    let header = std::str::from_utf8(&header).map_err(|_| not_npy())?;
    let header = parse_header(header)
        .map_err(|why| bad(format!("has an unreadable .npy header ({why})")))?;
    let dtype = match header.descr.as_str() {
        "<f8" => Dtype::F64,
        "<f4" => Dtype::F32,
        other => {
            return Err(bad(format!(
                "has dtype '{other}'; only little-endian float64 ('<f8') or float32 ('<f4') \
                 is supported (in NumPy: np.save(path, x.astype('<f8')))"
            )))
        }
    };
    if let Some(expected) = expected.filter(|&e| e != dtype) {
        return Err(bad(format!(
            "has dtype '{}' but the problem's \"dtype\" is \"{expected}\" ('{}'); \
             save it as {expected} or change \"dtype\"",
            header.descr,
            expected.npy_descr()
        )));
    }
    if header.fortran_order && header.shape.len() > 1 {
        return Err(bad("is stored in Fortran order; save it in C order \
             (in NumPy: np.save(path, np.ascontiguousarray(x)))"
            .into()));
    }
    let size = dtype.bytes();
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .filter(|c| c.checked_mul(size).is_some())
        .ok_or_else(|| {
            bad(format!(
                "has an impossible shape {}",
                shape_text(&header.shape)
            ))
        })?;
    let payload = file_len - (prefix_len + header_len) as u64;
    let expected_bytes = (count * size) as u64;
    if payload != expected_bytes {
        let what = if payload < expected_bytes {
            "is truncated"
        } else {
            "has trailing bytes"
        };
        return Err(bad(format!(
            "{what}: shape {} of '{}' needs {expected_bytes} bytes of data, the file holds {payload}",
            shape_text(&header.shape),
            header.descr
        )));
    }
    let offset = prefix_len + header_len;
    let values = match dtype {
        Dtype::F64 => NpyValues::F64(payload_values(
            &mut file,
            field,
            &header.shape,
            offset,
            count,
            map,
        )?),
        Dtype::F32 => NpyValues::F32(payload_values(
            &mut file,
            field,
            &header.shape,
            offset,
            count,
            map,
        )?),
    };
    Ok((header.shape, values))
}

/// The `count` values after the header: mapped (with `map`, for large
/// payloads) or read.
fn payload_values<T: Element>(
    file: &mut File,
    field: &str,
    shape: &[usize],
    offset: usize,
    count: usize,
    map: bool,
) -> Result<Values<T>, InputError> {
    let bytes = count * T::DTYPE.bytes();
    if map && bytes as u64 >= MAP_BYTES {
        if let Some(mapped) = MappedValues::map(file, offset, count) {
            return Ok(Values::Mapped(Arc::new(mapped)));
        }
    }
    // A sparse file can hold a shape larger than memory.
    crate::memory::check_request(
        field,
        bytes as f64,
        &format!("an array of shape {}", shape_text(shape)),
    )?;
    let data = read_values(file, count).map_err(|e| read_error(field, &e))?;
    Ok(Values::Owned(data))
}

/// Reads `count` little-endian values straight into the vector that is
/// returned: one copy from the page cache, no intermediate buffer.
fn read_values<T: Element>(file: &mut File, count: usize) -> io::Result<Vec<T>> {
    let size = T::DTYPE.bytes();
    let mut data = crate::memory::zeroed_values::<T>(count);
    {
        // SAFETY: any byte pattern is a valid f64 or f32, the slice covers
        // exactly the vector's initialised storage, and it is dropped before
        // `data` is used.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), count * size) };
        file.read_exact(bytes)?;
    }
    if cfg!(target_endian = "big") {
        let mut bytes = Vec::with_capacity(size);
        for value in &mut data {
            bytes.clear();
            value.extend_le_bytes(&mut bytes);
            bytes.reverse();
            *value = T::from_le_slice(&bytes);
        }
    }
    Ok(data)
}

/// Tokens of the Python dict literal in a .npy header.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open(char),
    Close(char),
    Colon,
    Comma,
    Str(String),
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '{' | '(' => {
                tokens.push(Token::Open(c));
                chars.next();
            }
            '}' | ')' => {
                tokens.push(Token::Close(c));
                chars.next();
            }
            ':' => {
                tokens.push(Token::Colon);
                chars.next();
            }
            ',' => {
                tokens.push(Token::Comma);
                chars.next();
            }
            '\'' | '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(ch) => s.push(ch),
                        None => return Err("unterminated string".into()),
                    }
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_ascii_alphanumeric() || ch == '_' {
                        word.push(ch);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

/// Parses `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> Result<Header, String> {
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let mut next = || {
        let t = tokens.get(pos).cloned();
        pos += 1;
        t
    };
    if next() != Some(Token::Open('{')) {
        return Err("expected '{'".into());
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        let key = match next() {
            Some(Token::Close('}')) => break,
            Some(Token::Str(k)) => k,
            t => return Err(format!("expected a key, found {t:?}")),
        };
        if next() != Some(Token::Colon) {
            return Err(format!("expected ':' after '{key}'"));
        }
        match key.as_str() {
            "descr" => match next() {
                Some(Token::Str(s)) => descr = Some(s),
                _ => return Err("'descr' is not a simple dtype string (structured dtype?)".into()),
            },
            "fortran_order" => match next() {
                Some(Token::Word(w)) if w == "True" => fortran = Some(true),
                Some(Token::Word(w)) if w == "False" => fortran = Some(false),
                t => {
                    return Err(format!(
                        "'fortran_order' must be True or False, found {t:?}"
                    ))
                }
            },
            "shape" => {
                if next() != Some(Token::Open('(')) {
                    return Err("'shape' must be a tuple".into());
                }
                let mut dims = Vec::new();
                loop {
                    match next() {
                        Some(Token::Close(')')) => break,
                        Some(Token::Comma) => continue,
                        // NumPy under Python 2 wrote longs as "3L".
                        Some(Token::Word(w)) => dims.push(
                            w.trim_end_matches('L')
                                .parse::<usize>()
                                .map_err(|_| format!("bad dimension '{w}'"))?,
                        ),
                        t => return Err(format!("bad 'shape' entry {t:?}")),
                    }
                }
                shape = Some(dims);
            }
            other => return Err(format!("unknown key '{other}'")),
        }
        match next() {
            Some(Token::Comma) => {}
            Some(Token::Close('}')) => break,
            t => return Err(format!("expected ',' or '}}', found {t:?}")),
        }
    }
    Ok(Header {
        descr: descr.ok_or("missing 'descr'")?,
        fortran_order: fortran.ok_or("missing 'fortran_order'")?,
        shape: shape.ok_or("missing 'shape'")?,
    })
}

/// The preamble and padded header for a `'<f8'` C-order array (format 1.0,
/// or 2.0 where the header does not fit in 64 KiB).
fn header_bytes(shape: &[usize]) -> Vec<u8> {
    header_bytes_of(shape, Dtype::F64)
}

/// [`header_bytes`] for an array of `dtype`.
fn header_bytes_of(shape: &[usize], dtype: Dtype) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        dtype.npy_descr(),
        shape_text(shape)
    );
    let (version, prefix) = if dict.len() + 64 + 10 <= u16::MAX as usize {
        (1u8, 10)
    } else {
        (2u8, 12)
    };
    // NumPy aligns the data to 64 bytes; the header ends in '\n'.
    let unpadded = prefix + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(prefix + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

fn write_values<T: Element>(w: &mut dyn Write, values: impl Iterator<Item = T>) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(CHUNK_VALUES * T::DTYPE.bytes());
    for v in values {
        v.extend_le_bytes(&mut buffer);
        if buffer.len() == buffer.capacity() {
            w.write_all(&buffer)?;
            buffer.clear();
        }
    }
    w.write_all(&buffer)
}

/// Writes `data` (C order) with the given shape, atomically.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64]) -> io::Result<()> {
    write_npy_typed(path, shape, data)
}

/// [`write_npy`] for f64 (`'<f8'`) or f32 (`'<f4'`) values.
pub fn write_npy_typed<T: Element>(path: &Path, shape: &[usize], data: &[T]) -> io::Result<()> {
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: shape {} needs {count} values, got {}",
                path.display(),
                shape_text(shape),
                data.len()
            ),
        ));
    }
    write_atomic_with(path, |w| {
        w.write_all(&header_bytes_of(shape, T::DTYPE))?;
        write_values(w, data.iter().copied())
    })
}

/// Writes `matrix` as a `rows x cols` array, atomically.
pub fn write_npy_matrix(path: &Path, matrix: &DMatrix<f64>) -> io::Result<()> {
    let shape = [matrix.nrows(), matrix.ncols()];
    write_atomic_with(path, |w| {
        w.write_all(&header_bytes(&shape))?;
        let (rows, cols) = (matrix.nrows(), matrix.ncols());
        write_values(
            w,
            (0..rows).flat_map(|i| (0..cols).map(move |j| matrix[(i, j)])),
        )
    })
}

/// Writes the transpose of `xt` (d x n, one sample per column) as an n x d
/// array: the column-major storage of `xt` is already that C-order layout,
/// so nothing is copied. The values are written in their stored type
/// (`'<f8'` or `'<f4'`).
pub fn write_npy_transposed(path: &Path, xt: &Samples) -> io::Result<()> {
    let shape = [xt.ncols(), xt.nrows()];
    match xt.values() {
        SampleValues::F64(x) => write_npy_typed(path, &shape, x),
        SampleValues::F32(x) => write_npy_typed(path, &shape, x),
    }
}

/// Writes a 1-D array, atomically.
pub fn write_npy_vector(path: &Path, values: &[f64]) -> io::Result<()> {
    write_npy(path, &[values.len()], values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::test_dir::TestDir;

    fn raw_npy(descr: &str, fortran: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
        let dict =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}\n");
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn payload(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn matrix_and_vector_round_trip() {
        let dir = TestDir::new("npy-rt");
        let m = DMatrix::from_fn(3, 5, |i, j| (i * 10 + j) as f64 - 0.125 * j as f64);
        let path = dir.path().join("m.npy");
        write_npy_matrix(&path, &m).unwrap();
        let back = read_npy(&path, "m").unwrap();
        assert_eq!(back.shape, vec![3, 5]);
        assert_eq!(DMatrix::from_row_slice(3, 5, &back.data), m);
        // Data starts on a 64-byte boundary, as NumPy writes it.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 15 * 8) % 64, 0);

        let v = [1.5, -2.0, f64::MIN_POSITIVE, 1e300];
        let path = dir.path().join("v.npy");
        write_npy_vector(&path, &v).unwrap();
        let back = read_npy(&path, "v").unwrap();
        assert_eq!(back.shape, vec![4]);
        assert_eq!(back.data, v);
    }

    #[test]
    fn f32_arrays_keep_their_type_or_widen_exactly() {
        let dir = TestDir::new("npy-f32");
        let values = [0.1f32, -3.5, f32::MAX, 1e-45];
        let path = dir.path().join("v.npy");
        write_npy_typed(&path, &[2, 2], &values).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 16) % 64, 0, "data on a 64-byte boundary");
        let (shape, kept) = read_npy_typed(&path, "v", false, None).unwrap();
        assert_eq!(shape, vec![2, 2]);
        assert_eq!(kept, NpyValues::F32(Values::Owned(values.to_vec())));
        let wide: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(read_npy(&path, "v").unwrap().data, wide);
        let err = read_npy_typed(&path, "v", false, Some(Dtype::F64)).unwrap_err();
        assert!(
            err.message
                .contains("has dtype '<f4' but the problem's \"dtype\" is \"f64\""),
            "{err}"
        );
        // Samples keep f32, and write back the same bytes.
        let xt = Samples::new_f32(2, 2, Values::Owned(values.to_vec()));
        let again = dir.path().join("again.npy");
        write_npy_transposed(&again, &xt).unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), bytes);
    }

    #[test]
    fn transposed_writer_matches_matrix_writer() {
        let dir = TestDir::new("npy-t");
        let xt = DMatrix::from_fn(4, 7, |i, j| (i as f64).sin() + j as f64);
        let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
        write_npy_transposed(&a, &Samples::from_matrix(&xt)).unwrap();
        write_npy_matrix(&b, &xt.transpose()).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // Larger than one read chunk.
        let big: Vec<f64> = (0..CHUNK_VALUES * 2 + 17).map(|i| i as f64 * 0.5).collect();
        write_npy(&a, &[big.len() / 3, 3], &big[..big.len() / 3 * 3]).unwrap();
        assert_eq!(read_npy(&a, "a").unwrap().data, &big[..big.len() / 3 * 3]);
    }

    #[test]
    fn reads_numpy_style_headers() {
        let h = parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 4L), }   \n")
            .unwrap();
        assert_eq!(h.shape, vec![3, 4]);
        let h =
            parse_header("{\"shape\": (), \"fortran_order\": True, \"descr\": \"<f8\"}").unwrap();
        assert!(h.fortran_order && h.shape.is_empty());
        assert!(
            parse_header("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,)}")
                .is_err()
        );
        assert!(parse_header("{'descr': '<f8', 'shape': (2,)}").is_err());
    }

    #[test]
    fn rejects_bad_files_naming_them() {
        let dir = TestDir::new("npy-bad");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "f2.npy",
                raw_npy("<f2", "False", "(2,)", &[0; 4]),
                "dtype '<f2'",
            ),
            (
                "f4.npy",
                raw_npy("<f4", "False", "(3,)", &[0; 8]),
                "is truncated: shape (3,) of '<f4' needs 12 bytes",
            ),
            (
                "be.npy",
                raw_npy(">f8", "False", "(1,)", &[0; 8]),
                "dtype '>f8'",
            ),
            (
                "i8.npy",
                raw_npy("<i8", "False", "(1,)", &[0; 8]),
                "dtype '<i8'",
            ),
            (
                "fortran.npy",
                raw_npy("<f8", "True", "(2, 2)", &payload(&[1.0; 4])),
                "Fortran order",
            ),
            (
                "short.npy",
                raw_npy("<f8", "False", "(2, 2)", &payload(&[1.0; 3])),
                "truncated",
            ),
            (
                "long.npy",
                raw_npy("<f8", "False", "(3,)", &payload(&[1.0; 4])),
                "trailing bytes",
            ),
            ("text.npy", b"1,2,3\n".to_vec(), "not a .npy file"),
            (
                "header.npy",
                raw_npy("<f8", "Maybe", "(1,)", &[0; 8]),
                "unreadable .npy header",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = read_npy(&path, name).unwrap_err();
            assert_eq!(err.field, name);
            assert!(err.message.contains(expected), "{name}: {err}");
        }
        let err = read_npy(&dir.path().join("missing.npy"), "missing.npy").unwrap_err();
        assert_eq!(err.message, "file not found");
        // A 1-D Fortran-order array is the same bytes as C order: accepted.
        let path = dir.path().join("f1.npy");
        std::fs::write(&path, raw_npy("<f8", "True", "(2,)", &payload(&[1.0, 2.0]))).unwrap();
        assert_eq!(read_npy(&path, "f1").unwrap().data, vec![1.0, 2.0]);
    }

    #[test]
    fn shape_mismatch_on_write_is_an_error() {
        let dir = TestDir::new("npy-w");
        assert!(write_npy(&dir.path().join("x.npy"), &[2, 2], &[1.0; 3]).is_err());
        assert!(!dir.path().join("x.npy").exists());
    }
}
