//! The minimax problem's pieces that every solver shares: the feasible sets,
//! the certificates (lower bounds on OPT that hold in floating point), the
//! numerics they rest on (stable softmax and log-sum-exp, rounding
//! allowances), and the power-of-two scaling of extreme data.

pub mod ball;
pub mod certificate;
pub mod directed;
pub mod numerics;
pub mod residual;
pub mod scaling;
