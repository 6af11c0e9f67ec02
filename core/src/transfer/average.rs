//! Average pre-training: the rank-k projector minimising the mean upstream
//! loss. Since `mean_i f_i(P) = mean_i c_i - <mean_i M_i, P>`, Ky Fan's
//! theorem gives the top-k eigenvectors of `sum_i M_i` (population:
//! `sum_i beta_i beta_i^T`; finite sample: its unbiased estimate).

use super::spectral::top_eigenvectors;
use super::upstream::UpstreamLosses;
use nalgebra::DMatrix;

/// The average-pre-training basis (d x k, orthonormal columns).
pub fn average_basis(losses: &UpstreamLosses, k: usize) -> DMatrix<f64> {
    let m = losses.num_tasks();
    let uniform = vec![1.0 / m as f64; m];
    top_eigenvectors(&losses.weighted_matrix(&uniform), k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::model::residual;
    use nalgebra::DVector;

    #[test]
    fn average_keeps_the_dominant_directions_and_drops_the_rare_one() {
        // Five tasks along e1, four along e2, one along e3; k = 2.
        let e = |i: usize| DVector::from_fn(3, |j, _| if i == j { 1.0 } else { 0.0 });
        let mut tasks = vec![e(0); 5];
        tasks.extend(vec![e(1); 4]);
        tasks.push(e(2));
        let basis = average_basis(&UpstreamLosses::population(&tasks), 2);
        assert!(residual(&basis, &e(0)) < 1e-12);
        assert!(residual(&basis, &e(1)) < 1e-12);
        assert!((residual(&basis, &e(2)) - 1.0).abs() < 1e-12);
    }
}
