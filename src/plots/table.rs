//! Tidy tables behind the figures. The caller writes the CSV first; a chart
//! is drawn from the table read back from that CSV (or from the same struct).
//!
//! | Table | CSV columns |
//! |---|---|
//! | [`LineTable`] | `series,role,replicate,x,y,y_lo,y_hi` (`y_lo`, `y_hi` may be empty) |
//! | [`BarTable`] | `group,series,value,err` (`err` may be empty) |
//! | [`WeightTable`] | `iteration,task,weight,loss` (`loss` may be empty) |

use super::PlotError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a row of a line chart is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Measured values: drawn solid, as the median over replicates with a
    /// quantile band.
    Measured,
    /// A theoretical bound: drawn dashed, in the colour of the measured series
    /// of the same name.
    Bound,
    /// A marked x value (for example the predicted best temperature): a dotted
    /// vertical line; `y` is ignored.
    Reference,
}

/// One point of a line chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinePoint {
    pub series: String,
    pub role: Role,
    /// Seed or repetition; rows of one series at the same x are aggregated.
    pub replicate: u64,
    pub x: f64,
    pub y: f64,
    /// Explicit lower and upper ends of an error bar / band (single replicate).
    pub y_lo: Option<f64>,
    pub y_hi: Option<f64>,
}

/// Long-format data of a line chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineTable {
    pub points: Vec<LinePoint>,
}

impl LineTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one measured point of `series` for `replicate`.
    pub fn measured(&mut self, series: &str, replicate: u64, x: f64, y: f64) -> &mut Self {
        self.push(series, Role::Measured, replicate, x, y, None)
    }

    /// Adds one point of the bound curve paired with `series`.
    pub fn bound(&mut self, series: &str, x: f64, y: f64) -> &mut Self {
        self.push(series, Role::Bound, 0, x, y, None)
    }

    /// Marks the value `x` with a labelled vertical line.
    pub fn reference(&mut self, label: &str, x: f64) -> &mut Self {
        self.push(label, Role::Reference, 0, x, f64::NAN, None)
    }

    /// Adds a point with an explicit error bar `[lo, hi]`.
    pub fn with_error(&mut self, series: &str, x: f64, y: f64, lo: f64, hi: f64) -> &mut Self {
        self.push(series, Role::Measured, 0, x, y, Some((lo, hi)))
    }

    fn push(
        &mut self,
        series: &str,
        role: Role,
        replicate: u64,
        x: f64,
        y: f64,
        error: Option<(f64, f64)>,
    ) -> &mut Self {
        self.points.push(LinePoint {
            series: series.to_string(),
            role,
            replicate,
            x,
            y,
            y_lo: error.map(|e| e.0),
            y_hi: error.map(|e| e.1),
        });
        self
    }

    pub fn write_csv(&self, path: &Path) -> Result<(), PlotError> {
        write_rows(path, &self.points)
    }

    pub fn read_csv(path: &Path) -> Result<Self, PlotError> {
        Ok(Self {
            points: read_rows(path)?,
        })
    }
}

/// One bar: `value` of `series` within `group` (for example a task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub group: String,
    pub series: String,
    pub value: f64,
    /// Half-width of an error bar.
    pub err: Option<f64>,
}

/// Long-format data of a grouped bar chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarTable {
    pub bars: Vec<Bar>,
}

impl BarTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, group: &str, series: &str, value: f64, err: Option<f64>) -> &mut Self {
        self.bars.push(Bar {
            group: group.to_string(),
            series: series.to_string(),
            value,
            err,
        });
        self
    }

    pub fn write_csv(&self, path: &Path) -> Result<(), PlotError> {
        write_rows(path, &self.bars)
    }

    pub fn read_csv(path: &Path) -> Result<Self, PlotError> {
        Ok(Self {
            bars: read_rows(path)?,
        })
    }
}

/// The weight (and optionally the loss) of one task at one iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightPoint {
    pub iteration: f64,
    pub task: String,
    pub weight: f64,
    pub loss: Option<f64>,
}

/// Long-format weight trajectories.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightTable {
    pub points: Vec<WeightPoint>,
}

impl WeightTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the weights (and losses, if given) of all tasks at one iteration;
    /// tasks are named by their index.
    pub fn push_iteration(
        &mut self,
        iteration: f64,
        weights: &[f64],
        losses: Option<&[f64]>,
    ) -> &mut Self {
        for (i, &w) in weights.iter().enumerate() {
            self.points.push(WeightPoint {
                iteration,
                task: i.to_string(),
                weight: w,
                loss: losses.and_then(|l| l.get(i).copied()),
            });
        }
        self
    }

    pub fn write_csv(&self, path: &Path) -> Result<(), PlotError> {
        write_rows(path, &self.points)
    }

    pub fn read_csv(path: &Path) -> Result<Self, PlotError> {
        Ok(Self {
            points: read_rows(path)?,
        })
    }
}

/// Writes rows with a header, atomically.
pub fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), PlotError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer
            .serialize(row)
            .map_err(|e| PlotError::Csv(path.display().to_string(), e.to_string()))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| PlotError::Csv(path.display().to_string(), e.to_string()))?;
    crate::report::write_atomic(path, &bytes).map_err(|e| PlotError::io(path, e))
}

/// Reads rows written by [`write_rows`] (or by hand, with the same header).
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, PlotError> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| PlotError::Csv(path.display().to_string(), e.to_string()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(i, row)| {
            row.map_err(|e| {
                PlotError::Csv(
                    format!("{} (data row {})", path.display(), i + 1),
                    e.to_string(),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_through_csv() {
        let dir = std::env::temp_dir().join(format!("taskrobust-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut lines = LineTable::new();
        lines
            .measured("softmax-gd", 1, 10.0, 0.1 + 1e-17)
            .bound("softmax-gd", 10.0, 0.3)
            .reference("mu*", 0.02)
            .with_error("avg", 2.0, 1.0, 0.5, 1.5);
        let path = dir.join("lines.csv");
        lines.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("series,role,replicate,x,y,y_lo,y_hi\n"),
            "{text}"
        );
        let back = LineTable::read_csv(&path).unwrap();
        assert_eq!(back.points.len(), 4);
        assert_eq!(back.points[0], lines.points[0]);
        assert_eq!(back.points[1].role, Role::Bound);
        assert!(back.points[2].y.is_nan());
        assert_eq!(back.points[3].y_hi, Some(1.5));

        let mut bars = BarTable::new();
        bars.push("task 1", "average", 0.5, None)
            .push("task 1", "minimax", 0.4, Some(0.01));
        let path = dir.join("bars.csv");
        bars.write_csv(&path).unwrap();
        assert_eq!(BarTable::read_csv(&path).unwrap(), bars);

        let mut weights = WeightTable::new();
        weights.push_iteration(0.0, &[0.5, 0.5], Some(&[1.0, 2.0]));
        weights.push_iteration(1.0, &[0.25, 0.75], None);
        let path = dir.join("weights.csv");
        weights.write_csv(&path).unwrap();
        assert_eq!(WeightTable::read_csv(&path).unwrap(), weights);

        // A malformed file is an error naming the file and row.
        let path = dir.join("bad.csv");
        std::fs::write(&path, "group,series,value,err\na,b,notanumber,\n").unwrap();
        let err = BarTable::read_csv(&path).unwrap_err().to_string();
        assert!(err.contains("bad.csv") && err.contains("row 1"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
