//! The transfer figures, each drawn from a CSV written first (plots tables):
//! worst-task risk against n (measured with error bars, exact prediction
//! dashed), n* against the imbalance, per-task risk at a fixed n, and the
//! minimax weights on the upstream tasks.

use super::experiment::{per_task_n, SweepPoint};
use super::report::TransferReport;
use crate::error::Error;
use crate::plots::bars::{bar_chart_from_csv, BarSpec};
use crate::plots::lines::{line_chart_from_csv, LineSpec};
use crate::plots::{BarTable, LineTable, Scale};
use std::path::Path;

fn plot_error(e: crate::plots::PlotError) -> Error {
    Error::io("", e)
}

/// A drawn figure: `<out>/<name>.{csv,svg,png}` and its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferFigure {
    pub name: String,
    pub caption: String,
}

fn methods(report: &TransferReport) -> [(&'static str, &super::report::MethodReport); 3] {
    [
        ("none", &report.methods.none),
        ("average", &report.methods.average),
        ("minimax", &report.methods.minimax),
    ]
}

/// Worst-task excess risk against n: measured mean +- 2 standard errors per
/// method, the exact prediction of the worst task dashed, epsilon dashed grey.
pub fn worst_risk_figure(report: &TransferReport, out: &Path) -> Result<TransferFigure, Error> {
    let name = format!("transfer_worst_risk_{}", report.scenario.name);
    let mut table = LineTable::new();
    for (method, m) in methods(report) {
        for p in &m.curve {
            let n = p.n as f64;
            table.with_error(
                method,
                n,
                p.worst_mean,
                p.worst_mean - 2.0 * p.worst_se,
                p.worst_mean + 2.0 * p.worst_se,
            );
            table.bound(method, n, p.predicted);
        }
    }
    let grid = &report.scenario.n_grid;
    for &n in [grid[0], *grid.last().expect("non-empty grid")].iter() {
        table.bound("epsilon", n as f64, report.scenario.epsilon);
    }
    let csv = out.join(format!("{name}.csv"));
    table.write_csv(&csv).map_err(plot_error)?;
    let spec = LineSpec {
        band: None,
        ..LineSpec::xy(
            "downstream samples n",
            "worst-task excess risk",
            Scale::Log,
            Scale::Log,
        )
    };
    line_chart_from_csv(&csv, &spec, &out.join(&name)).map_err(plot_error)?;
    let m = &report.methods;
    let show = |n: Option<usize>| n.map_or("never".to_string(), |n| n.to_string());
    Ok(TransferFigure {
        caption: format!(
            "{}: worst downstream task's excess risk against n ({} replicates per task and n; error bars +-2 se of \
             the worst task's mean), with the exact prediction b + (sigma^2 + b) p/(n - p - 1) of the task with the \
             largest bias dashed and epsilon = {} dashed. Worst-task n*: none {}, average {}, minimax {} (predicted).",
            report.scenario.name, report.scenario.replicates, report.scenario.epsilon,
            show(m.none.n_star_predicted), show(m.average.n_star_predicted), show(m.minimax.n_star_predicted)
        ),
        name,
    })
}

/// Predicted worst-task n* of each method against the share of pattern tasks
/// (methods whose n* is infinite at a level have no point there).
pub fn sweep_figure(points: &[SweepPoint], out: &Path) -> Result<TransferFigure, Error> {
    let name = "transfer_n_star_sweep".to_string();
    let mut table = LineTable::new();
    for p in points {
        for (method, n) in [
            ("none", p.none_n_star),
            ("average", p.average_n_star),
            ("minimax", p.minimax_n_star),
        ] {
            if let Some(n) = n {
                table.measured(method, 0, p.pattern_share, n as f64);
            }
        }
    }
    let csv = out.join(format!("{name}.csv"));
    table.write_csv(&csv).map_err(plot_error)?;
    let spec = LineSpec {
        band: None,
        ..LineSpec::xy(
            "share of pattern tasks upstream",
            "worst-task n* (predicted)",
            Scale::Linear,
            Scale::Log,
        )
    };
    line_chart_from_csv(&csv, &spec, &out.join(&name)).map_err(plot_error)?;
    let unreachable: Vec<String> = points
        .iter()
        .filter(|p| p.average_n_star.is_none())
        .map(|p| format!("{:.2}", p.pattern_share))
        .collect();
    Ok(TransferFigure {
        caption: format!(
            "Imbalance sweep (pattern-semantic family, {} upstream tasks, downstream = upstream): exact worst-task \
             n* of each method against the share of pattern tasks.{}",
            points.first().map_or(0, |p| p.pattern_tasks + p.semantic_tasks),
            if unreachable.is_empty() {
                String::new()
            } else {
                format!(" Average never reaches epsilon at shares {}.", unreachable.join(", "))
            }
        ),
        name,
    })
}

/// Per-task mean excess risk (+- se) at one n for average and minimax.
pub fn per_task_figure(report: &TransferReport, out: &Path) -> Result<TransferFigure, Error> {
    let name = format!("transfer_per_task_{}", report.scenario.name);
    let n = per_task_n(report);
    let mut table = BarTable::new();
    for c in report
        .cells
        .iter()
        .filter(|c| c.n == n && c.method != "none")
    {
        let group = format!(
            "{}{}",
            c.task,
            label_tag(&report.scenario.downstream_labels[c.task])
        );
        table.push(&group, &c.method, c.mean, Some(c.se));
    }
    let csv = out.join(format!("{name}.csv"));
    table.write_csv(&csv).map_err(plot_error)?;
    let spec = BarSpec {
        size: crate::plots::FigureSize::WIDE,
        ..BarSpec::new("downstream task", &format!("mean excess risk at n = {n}"))
    };
    bar_chart_from_csv(&csv, &spec, &out.join(&name)).map_err(plot_error)?;
    Ok(TransferFigure {
        caption: format!(
            "{}: mean excess risk of every downstream task at n = {n} (+- se), average vs minimax pre-training; \
             tags: p pattern, s semantic, up / us unseen pattern / semantic mixture, u unseen mixture, b balanced. Minimax evens the risk out across tasks.",
            report.scenario.name
        ),
        name,
    })
}

fn label_tag(label: &str) -> &'static str {
    match label {
        "pattern" => "p",
        "semantic" => "s",
        "unseen-pattern" => "up",
        "unseen-semantic" => "us",
        "unseen" => "u",
        "balanced" => "b",
        _ => "",
    }
}

/// Weights of the minimax certificate on the upstream tasks.
pub fn weights_figure(report: &TransferReport, out: &Path) -> Result<TransferFigure, Error> {
    let name = format!("transfer_weights_{}", report.scenario.name);
    let mut table = BarTable::new();
    for (i, label) in report.weights.labels.iter().enumerate() {
        let group = format!("{i}{}", label_tag(label));
        table.push(&group, "Fantope solve", report.weights.fantope[i], None);
        table.push(
            &group,
            "rank-k certificate",
            report.weights.grassmann[i],
            None,
        );
    }
    let csv = out.join(format!("{name}.csv"));
    table.write_csv(&csv).map_err(plot_error)?;
    let spec = BarSpec {
        show_max: false,
        size: crate::plots::FigureSize::WIDE,
        ..BarSpec::new("upstream task", "minimax weight")
    };
    bar_chart_from_csv(&csv, &spec, &out.join(&name)).map_err(plot_error)?;
    Ok(TransferFigure {
        caption: format!(
            "{}: weights on the upstream tasks certifying the minimax (Fantope solve, and the rank-k solution's \
             certificate); tags: p pattern, s semantic, b balanced.",
            report.scenario.name
        ),
        name,
    })
}
