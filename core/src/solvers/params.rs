//! Each method's parameters, in linfa's style: a builder with the method's
//! own fields, then [`check`](SmoothedParams::check) into [`Checked`]
//! parameters, the only kind a solver takes, or a typed [`ParamError`] that
//! names the parameter. Unset parameters (`None`) are chosen by the method at
//! its start (docs/THEORY.md, "Default step rule").

use crate::error::InputError;
use serde::{Deserialize, Serialize};

/// A parameter a method refused: which one, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A step, temperature or distance that is not finite and positive.
    #[error("{name}: must be a finite positive number, got {value}")]
    NotPositive {
        /// The parameter, as the field of [`SolveOptions`](super::SolveOptions) names it.
        name: &'static str,
        /// The refused value.
        value: f64,
    },
    /// A fraction (a moving-average factor) outside (0, 1].
    #[error("{name}: must be in (0, 1], got {value}")]
    NotAFraction {
        /// The parameter.
        name: &'static str,
        /// The refused value.
        value: f64,
    },
    /// A count (a horizon, a batch size) of zero.
    #[error("{name}: must be a positive integer")]
    NotAPositiveCount {
        /// The parameter.
        name: &'static str,
    },
}

impl ParamError {
    /// The parameter's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotPositive { name, .. }
            | Self::NotAFraction { name, .. }
            | Self::NotAPositiveCount { name } => name,
        }
    }
}

impl From<ParamError> for InputError {
    fn from(e: ParamError) -> Self {
        let text = e.to_string();
        let message = text
            .strip_prefix(&format!("{}: ", e.name()))
            .unwrap_or(&text)
            .to_string();
        InputError::new(e.name(), message)
    }
}

impl From<ParamError> for crate::Error {
    fn from(e: ParamError) -> Self {
        crate::Error::Input(e.into())
    }
}

/// Parameters that passed their check; solvers take only these.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Checked<P>(P);

impl<P> Checked<P> {
    /// The checked parameters.
    pub fn get(&self) -> &P {
        &self.0
    }
}

fn positive(name: &'static str, value: Option<f64>) -> Result<(), ParamError> {
    match value {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(ParamError::NotPositive { name, value: v }),
        _ => Ok(()),
    }
}

fn count(name: &'static str, value: u64) -> Result<(), ParamError> {
    if value == 0 {
        return Err(ParamError::NotAPositiveCount { name });
    }
    Ok(())
}

/// Softmax-gd and accelerated softmax-gd.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SmoothedParams {
    /// mu, the softmax temperature (default: tuned for the horizon, or continuation).
    pub mu: Option<f64>,
    /// A fixed step (default: `1/L_mu`, or backtracking).
    pub step: Option<f64>,
    /// An upper bound on `||theta_0 - theta*||` where the set gives none.
    pub distance: Option<f64>,
    /// T, the number of iterations mu is tuned for.
    pub horizon: u64,
}

impl SmoothedParams {
    /// Every parameter chosen by the method, for `horizon` iterations.
    pub fn new(horizon: u64) -> Self {
        Self {
            mu: None,
            step: None,
            distance: None,
            horizon,
        }
    }
    /// A fixed temperature.
    pub fn mu(self, mu: f64) -> Self {
        Self {
            mu: Some(mu),
            ..self
        }
    }
    /// A fixed step.
    pub fn step(self, step: f64) -> Self {
        Self {
            step: Some(step),
            ..self
        }
    }
    /// A distance bound.
    pub fn distance(self, distance: f64) -> Self {
        Self {
            distance: Some(distance),
            ..self
        }
    }
    /// mu, step and distance finite and positive where given; a positive horizon.
    pub fn check(self) -> Result<Checked<Self>, ParamError> {
        positive("mu", self.mu)?;
        positive("step", self.step)?;
        positive("distance", self.distance)?;
        count("iterations", self.horizon)?;
        Ok(Checked(self))
    }
}

/// Stochastic softmax-gd: the smoothed parameters and its minibatches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StochasticParams {
    /// Temperature, step, distance and horizon, as for softmax-gd.
    pub smoothed: SmoothedParams,
    /// Samples per task per step.
    pub batch_size: usize,
    /// The moving-average factor of the task losses, in (0, 1] (default: none).
    pub ema: Option<f64>,
    /// The seed of the minibatch draws.
    pub seed: u64,
}

impl StochasticParams {
    /// `smoothed` with minibatches of `batch_size` rows drawn from `seed`.
    pub fn new(smoothed: SmoothedParams, batch_size: usize, seed: u64) -> Self {
        Self {
            smoothed,
            batch_size,
            ema: None,
            seed,
        }
    }
    /// A moving average of the task losses.
    pub fn ema(self, ema: f64) -> Self {
        Self {
            ema: Some(ema),
            ..self
        }
    }
    /// The smoothed checks, a positive batch size and `ema` in (0, 1].
    pub fn check(self) -> Result<Checked<Self>, ParamError> {
        self.smoothed.check()?;
        count("batch_size", self.batch_size as u64)?;
        if let Some(ema) = self.ema {
            if !(ema > 0.0 && ema <= 1.0) {
                return Err(ParamError::NotAFraction {
                    name: "ema",
                    value: ema,
                });
            }
        }
        Ok(Checked(self))
    }
}

/// Descent-ascent (Group-DRO style).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DescentAscentParams {
    /// The theta step (default: from the distance and G).
    pub step: Option<f64>,
    /// The weights' step (default: from the loss bound).
    pub weight_step: Option<f64>,
    /// An upper bound on `||theta_0 - theta*||` where the set gives none.
    pub distance: Option<f64>,
    /// T, the number of iterations the steps are tuned for.
    pub horizon: u64,
}

impl DescentAscentParams {
    /// Both steps chosen by the method, for `horizon` iterations.
    pub fn new(horizon: u64) -> Self {
        Self {
            step: None,
            weight_step: None,
            distance: None,
            horizon,
        }
    }
    /// Steps and distance finite and positive where given; a positive horizon.
    pub fn check(self) -> Result<Checked<Self>, ParamError> {
        positive("step", self.step)?;
        positive("weight_step", self.weight_step)?;
        positive("distance", self.distance)?;
        count("iterations", self.horizon)?;
        Ok(Checked(self))
    }
}

/// The subgradient method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubgradientParams {
    /// A fixed step (default: `R / (G sqrt T)`, or Polyak steps).
    pub step: Option<f64>,
    /// An upper bound on `||theta_0 - theta*||` where the set gives none.
    pub distance: Option<f64>,
    /// T, the number of iterations the step is tuned for.
    pub horizon: u64,
}

impl SubgradientParams {
    /// The step chosen by the method, for `horizon` iterations.
    pub fn new(horizon: u64) -> Self {
        Self {
            step: None,
            distance: None,
            horizon,
        }
    }
    /// Step and distance finite and positive where given; a positive horizon.
    pub fn check(self) -> Result<Checked<Self>, ParamError> {
        positive("step", self.step)?;
        positive("distance", self.distance)?;
        count("iterations", self.horizon)?;
        Ok(Checked(self))
    }
}

/// Gradient descent on the average loss (ERM).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AverageParams {
    /// A fixed step (default: `1/L`).
    pub step: Option<f64>,
}

impl AverageParams {
    /// The step finite and positive where given.
    pub fn check(self) -> Result<Checked<Self>, ParamError> {
        positive("step", self.step)?;
        Ok(Checked(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_names_the_parameter_it_refuses() {
        let bad_mu = SmoothedParams::new(10).mu(-1.0).check().unwrap_err();
        assert_eq!(
            bad_mu,
            ParamError::NotPositive {
                name: "mu",
                value: -1.0
            }
        );
        let input = InputError::from(bad_mu);
        assert_eq!(
            (input.field.as_str(), input.message.as_str()),
            ("mu", "must be a finite positive number, got -1")
        );
        assert_eq!(
            SmoothedParams::new(0).check().unwrap_err().name(),
            "iterations"
        );
        assert_eq!(
            SmoothedParams::new(5)
                .step(f64::NAN)
                .check()
                .unwrap_err()
                .name(),
            "step"
        );
        assert_eq!(
            SmoothedParams::new(5)
                .distance(0.0)
                .check()
                .unwrap_err()
                .name(),
            "distance"
        );
        let stochastic = StochasticParams::new(SmoothedParams::new(5), 0, 1);
        assert_eq!(stochastic.check().unwrap_err().name(), "batch_size");
        let ema = StochasticParams::new(SmoothedParams::new(5), 4, 1).ema(1.5);
        assert_eq!(
            ema.check().unwrap_err(),
            ParamError::NotAFraction {
                name: "ema",
                value: 1.5
            }
        );
        assert!(StochasticParams::new(SmoothedParams::new(5), 4, 1)
            .ema(1.0)
            .check()
            .is_ok());
        let da = DescentAscentParams {
            weight_step: Some(-2.0),
            ..DescentAscentParams::new(5)
        };
        assert_eq!(da.check().unwrap_err().name(), "weight_step");
        let sg = SubgradientParams {
            step: Some(f64::INFINITY),
            ..SubgradientParams::new(5)
        };
        assert_eq!(sg.check().unwrap_err().name(), "step");
        assert!(AverageParams { step: Some(0.0) }.check().is_err());
        let fine = SmoothedParams::new(5)
            .mu(0.1)
            .step(0.2)
            .distance(3.0)
            .check()
            .unwrap();
        assert_eq!(fine.get().mu, Some(0.1));
    }
}
