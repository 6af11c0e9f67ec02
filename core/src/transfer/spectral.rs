//! Sorted symmetric eigen-decompositions and Ky Fan sums.

use nalgebra::{DMatrix, DVector};

/// Eigenvalues (descending) and matching eigenvectors (columns) of the
/// symmetric part of `matrix`.
pub fn sorted_eigen(matrix: &DMatrix<f64>) -> (Vec<f64>, DMatrix<f64>) {
    let symmetric = (matrix + matrix.transpose()) * 0.5;
    let eigen = symmetric.symmetric_eigen();
    let mut order: Vec<usize> = (0..eigen.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let values = order.iter().map(|&j| eigen.eigenvalues[j]).collect();
    let vectors = DMatrix::from_columns(
        &order
            .iter()
            .map(|&j| eigen.eigenvectors.column(j).into_owned())
            .collect::<Vec<DVector<f64>>>(),
    );
    (values, vectors)
}

/// The k leading eigenvectors (d x k, orthonormal columns).
pub fn top_eigenvectors(matrix: &DMatrix<f64>, k: usize) -> DMatrix<f64> {
    let (_, vectors) = sorted_eigen(matrix);
    vectors.columns(0, k).into_owned()
}

/// Ky Fan sum: the sum of the k largest eigenvalues, which equals
/// `max { <A, P> : P in the Fantope of rank k }` for symmetric A.
pub fn ky_fan_sum(matrix: &DMatrix<f64>, k: usize) -> f64 {
    let (values, _) = sorted_eigen(matrix);
    values.iter().take(k).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenpairs_are_sorted_and_reconstruct() {
        let a = DMatrix::from_row_slice(3, 3, &[2.0, 1.0, 0.0, 1.0, 3.0, 0.5, 0.0, 0.5, -1.0]);
        let (values, vectors) = sorted_eigen(&a);
        assert!(values.windows(2).all(|w| w[0] >= w[1]));
        let rebuilt = &vectors
            * DMatrix::from_diagonal(&DVector::from_vec(values.clone()))
            * vectors.transpose();
        assert!((rebuilt - &a).amax() < 1e-12);
        assert!((ky_fan_sum(&a, 2) - values[0] - values[1]).abs() < 1e-15);
    }
}
