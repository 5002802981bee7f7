//! Plans as EventBridge Scheduler expressions.
//!
//! Every plan becomes a `cron(...)` expression with the plan's timezone as
//! `ScheduleExpressionTimezone`. `rate(...)` is never used: a rate schedule
//! counts from when it was created (or its start date), so "every 15 minutes"
//! would fire at :07, :22, … instead of the anchored :00, :15, … the embedded
//! scheduler and the API's "next fire times" promise.
//!
//! EventBridge's cron has six fields (minute hour day-of-month month
//! day-of-week year), numbers weekdays 1-7 from Sunday, and needs `?` in one of
//! the two day fields. Fields are written from the parsed sets, not copied
//! from the text, so every form of standard cron converts exactly.

use super::Plan;

/// What EventBridge Scheduler is given for a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    /// `cron(...)`, for `ScheduleExpression`.
    pub expression: String,
    /// IANA name, for `ScheduleExpressionTimezone`.
    pub timezone: String,
}

const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

pub fn expression(plan: &Plan) -> Expression {
    let p = &plan.cron().pattern;
    let minutes = numbers(&p.minutes.values(), 0, 59);
    let hours = numbers(&p.hours.values(), 0, 23);
    let months = numbers(&p.months.values(), 1, 12);
    let mut weekdays: Vec<u16> = p.days_of_week.values().into_iter().map(|d| d % 7).collect();
    weekdays.sort_unstable();
    weekdays.dedup();
    let days = p.days.values();
    // Plans never restrict both day fields (see `cron_expression` in rules.rs).
    let (dom, dow) = if weekdays.len() == 7 {
        (numbers(&days, 1, 31), "?".to_owned())
    } else {
        ("?".to_owned(), weekday_list(&weekdays))
    };
    Expression {
        expression: format!("cron({minutes} {hours} {dom} {months} {dow} *)"),
        timezone: plan.timezone().to_owned(),
    }
}

/// A numeric field: `*`, `start/step` when the values are every step-th from
/// `start` to the end of the range, else ranges and single values.
fn numbers(values: &[u16], min: u16, max: u16) -> String {
    let all = (max - min + 1) as usize;
    if values.len() == all {
        return "*".into();
    }
    if let [first, second, ..] = values {
        let step = second - first;
        let progression = values.windows(2).all(|w| w[1] - w[0] == step);
        // Every step-th value to the end of the range, and more than a pair.
        if step > 1 && progression && values.len() > 2 && values[values.len() - 1] + step > max {
            return format!("{first}/{step}");
        }
    }
    runs(values)
        .into_iter()
        .map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(",")
}

fn weekday_list(days: &[u16]) -> String {
    runs(days)
        .into_iter()
        .map(|(a, b)| {
            let (a, b) = (WEEKDAYS[a as usize % 7], WEEKDAYS[b as usize % 7]);
            if a == b {
                a.to_owned()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Sorted values as maximal runs of consecutive values; a run of two is two singles.
fn runs(values: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == v => *end = v,
            _ => out.push((v, v)),
        }
    }
    out.into_iter().flat_map(|(a, b)| if b == a + 1 { vec![(a, a), (b, b)] } else { vec![(a, b)] }).collect()
}
