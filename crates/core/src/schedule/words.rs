//! Schedules in words, for the API and the CLI.

use super::Plan;
use crate::manifest::{Preset, Schedule, Weekday};

pub(super) fn describe(plan: &Plan) -> String {
    let text = match plan.schedule() {
        Schedule::Simple(s) => {
            let at = s.at.as_deref().unwrap_or("00:00");
            match s.preset {
                Preset::Every5Minutes => "every 5 minutes".to_owned(),
                Preset::Every10Minutes => "every 10 minutes".to_owned(),
                Preset::Every15Minutes => "every 15 minutes".to_owned(),
                Preset::Every30Minutes => "every 30 minutes".to_owned(),
                Preset::Hourly => "every hour, on the hour".to_owned(),
                Preset::Every2Hours => "every 2 hours, on the hour (from 00:00)".to_owned(),
                Preset::Every4Hours => "every 4 hours, on the hour (from 00:00)".to_owned(),
                Preset::Every6Hours => "every 6 hours, on the hour (from 00:00)".to_owned(),
                Preset::Every12Hours => "every 12 hours, at 00:00 and 12:00".to_owned(),
                Preset::Daily => format!("daily at {at}"),
                Preset::Weekly => format!("weekly on {} at {at}", weekday(s.day.unwrap_or(Weekday::Monday))),
            }
        }
        Schedule::Cron(c) => {
            let mut d = plan.cron().describe();
            if d.ends_with('.') {
                d.pop();
            }
            format!("{} (cron `{}`)", lower_first(&d), c.cron.trim())
        }
    };
    format!("{text}, {} time", plan.timezone())
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn weekday(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}
