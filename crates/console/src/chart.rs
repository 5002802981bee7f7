//! Charts drawn on the server as SVG: no script and no style attribute (the
//! CSP allows neither), colours from the stylesheet's classes, and every
//! chart followed by a table of the numbers it draws, for screen readers and
//! for anyone who wants the exact values.

use minijinja::{context, Value};

use ferry_core::model::metrics::{DayMetrics, StatusCounts};

/// The drawing's coordinate space; the SVG scales to its container's width.
const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 200.0;
/// Room for the axis labels left of and below the plot.
const LEFT: f64 = 30.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 16.0;

/// The stacks of a bar, bottom first: (class, what the legend calls it, count).
fn stacks(c: &StatusCounts) -> [(&'static str, &'static str, u64); 4] {
    let failed = c.failed_integration + c.failed_platform + c.failed_timeout + c.failed_refresh;
    [
        ("succeeded", "Succeeded", c.succeeded),
        ("partial", "Partial", c.partial),
        ("failed", "Failed", failed),
        ("cancelled", "Cancelled", c.cancelled),
    ]
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `n`: an axis top with round ticks.
fn axis_top(n: u64) -> u64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= n.max(1) {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// Runs ended per day, stacked by final status, one bar a day (oldest
/// first), with the context the `run_chart` macro draws.
pub fn runs_per_day(title: &str, days: &[DayMetrics]) -> Value {
    let top = axis_top(days.iter().map(|d| d.summary.runs).max().unwrap_or(0));
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar_w = (slot * 0.6).min(40.0);
    let y_of = |n: u64| TOP + plot_h - plot_h * n as f64 / top as f64;
    let bars: Vec<Value> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
            let day = d.date.format("%a %-d").to_string();
            let mut below = 0;
            let segments: Vec<Value> = stacks(&d.summary.by_status)
                .into_iter()
                .filter(|(_, _, n)| *n > 0)
                .map(|(class, name, n)| {
                    let (y0, y1) = (y_of(below), y_of(below + n));
                    below += n;
                    context! { class, y => fmt(y1), h => fmt(y0 - y1), title => format!("{day}: {n} {}", name.to_lowercase()) }
                })
                .collect();
            context! {
                x => fmt(x), w => fmt(bar_w), mid => fmt(x + bar_w / 2.0),
                label => day, total => d.summary.runs, total_y => fmt(y_of(d.summary.runs) - 4.0),
                segments,
            }
        })
        .collect();
    let rows: Vec<Value> = days
        .iter()
        .map(|d| {
            let counts: Vec<u64> = stacks(&d.summary.by_status).iter().map(|(_, _, n)| *n).collect();
            context! { day => d.date.format("%a %-d %b").to_string(), counts, total => d.summary.runs }
        })
        .collect();
    let ticks: Vec<Value> = [0, top / 2, top]
        .iter()
        .map(|&n| context! { y => fmt(y_of(n)), label => n, text_y => fmt(y_of(n) + 4.0) })
        .collect();
    context! {
        title,
        width => WIDTH as u32, height => HEIGHT as u32, left => LEFT, right => WIDTH, label_y => HEIGHT - 6.0,
        bars, ticks, rows,
        series => stacks(&StatusCounts::default()).iter().map(|(class, name, _)| context! { class, name }).collect::<Vec<_>>(),
        empty => days.iter().all(|d| d.summary.runs == 0),
    }
}

/// Coordinates to a tenth of a unit: enough for a crisp drawing, short markup.
fn fmt(v: f64) -> String {
    format!("{:.1}", v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_tops_at_a_round_number_at_or_above_the_largest_bar() {
        assert_eq!([0, 1, 3, 7, 10, 11, 240, 501].map(axis_top), [1, 1, 5, 10, 10, 20, 500, 1000]);
    }
}
