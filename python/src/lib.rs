//! The Python bindings of taskrobust: the extension module
//! `taskrobust._taskrobust`, which the `taskrobust` package re-exports.
//!
//! This crate converts arrays and errors only; every number comes from the
//! core crate (`taskrobust`) and, for problem files, `reproduce` and
//! `transfer`, from the lab (`taskrobust_lab`), as the command line computes it.

mod arrays;
mod bounds;
mod errors;
mod lab;
mod problem;
mod solve;

use pyo3::prelude::*;

/// Arrays copied so far because their layout or dtype was not C-contiguous
/// float64 (for the tests).
#[pyfunction]
fn _copies() -> u64 {
    arrays::COPIES.load(std::sync::atomic::Ordering::Relaxed)
}

#[pymodule]
fn _taskrobust(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<problem::PyProblem>()?;
    module.add_class::<solve::PySolveResult>()?;
    module.add_class::<solve::PyCertificate>()?;
    module.add_function(wrap_pyfunction!(solve::solve, module)?)?;
    module.add_function(wrap_pyfunction!(solve::certify, module)?)?;
    module.add_function(wrap_pyfunction!(solve::run_method, module)?)?;
    module.add_function(wrap_pyfunction!(lab::transfer, module)?)?;
    module.add_function(wrap_pyfunction!(lab::reproduce, module)?)?;
    module.add_function(wrap_pyfunction!(_copies, module)?)?;
    let bounds = PyModule::new(module.py(), "bounds")?;
    bounds::register(&bounds)?;
    module.add_submodule(&bounds)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
