use pyo3::prelude::*;
#[pymodule]
fn _taskrobust(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
