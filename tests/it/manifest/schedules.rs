//! A manifest's schedule: the default every new job gets, and the presets it
//! offers, must compile by the same rule jobs and the scheduler use, or every
//! job created without a schedule would be refused with `invalid_schedule`.
//! Problems are reported at the offending value's line and column.

use ferry_core::manifest::{self, Diagnostic};

use super::{diagnostics, position_of};

/// A runnable manifest with `schedule` as its schedule section.
fn with_schedule(schedule: &str) -> String {
    format!("version: 1.0\nbase: node:20\nrun: node .\nschedule:\n{schedule}")
}

/// The one diagnostic of `source`, which must be at the first `needle`.
fn the_problem_at(source: &str, needle: &str) -> Diagnostic {
    let d = diagnostics(source);
    assert_eq!(d.len(), 1, "{d:#?}");
    let d = d.into_iter().next().unwrap_or_else(|| unreachable!());
    assert_eq!((d.line, d.column), position_of(source, needle), "{d:#?}");
    assert_eq!(d.file, "PANDIUM.yaml");
    d
}

#[test]
fn a_default_schedule_with_an_unknown_timezone_is_refused_at_its_line() {
    let source = with_schedule("  default:\n    preset: daily\n    at: '06:30'\n    timezone: Europe/Atlantis\n");
    let d = the_problem_at(&source, "Europe/Atlantis");
    assert_eq!((d.line, d.column), (8, 15));
    assert_eq!((d.code.as_str(), d.path.as_str()), ("invalid_value", "/schedule/default/timezone"));
    assert!(d.message.contains("unknown timezone `Europe/Atlantis`"), "{d:#?}");
}

#[test]
fn a_timezone_spelt_in_the_wrong_case_is_refused_like_the_scheduler_does() {
    let source = with_schedule("  default: {cron: '0 6 * * *', timezone: europe/vienna}\n");
    let d = the_problem_at(&source, "europe/vienna");
    assert_eq!(d.path, "/schedule/default/timezone");
}

#[test]
fn a_default_cron_restricting_both_day_fields_is_refused_at_the_cron() {
    let source = with_schedule("  default:\n    cron: '0 6 1 * 1-5'\n    timezone: Europe/Vienna\n");
    let d = the_problem_at(&source, "'0 6 1 * 1-5'");
    assert_eq!((d.line, d.column), (6, 11));
    assert_eq!((d.code.as_str(), d.path.as_str()), ("invalid_value", "/schedule/default/cron"));
    assert!(d.message.contains("not both"), "{d:#?}");
}

#[test]
fn a_default_cron_that_never_fires_is_refused_at_the_cron() {
    let source = with_schedule("  default: {cron: '0 0 30 2 *'}\n");
    let d = the_problem_at(&source, "'0 0 30 2 *'");
    assert!(d.message.contains("never fires"), "{d:#?}");
}

#[test]
fn a_default_cron_with_a_bad_field_is_refused_with_the_field_named() {
    let source = with_schedule("  default: {cron: '0 6 * * MON/2x'}\n");
    let d = the_problem_at(&source, "'0 6 * * MON/2x'");
    assert!(d.message.contains("day of week"), "{d:#?}");
}

#[test]
fn at_on_an_interval_preset_is_refused_at_the_at() {
    let source = with_schedule("  default: {preset: hourly, at: '06:30'}\n");
    let d = the_problem_at(&source, "'06:30'");
    assert_eq!(d.path, "/schedule/default/at");
    assert!(d.message.contains("`at` only applies"), "{d:#?}");
}

#[test]
fn a_default_breaking_two_rules_reports_both() {
    // Not offered, and in no timezone: each is its own problem to fix.
    let source = with_schedule("  default: {preset: daily, timezone: Mars/Olympus_Mons}\n  presets: [hourly]\n");
    let d = diagnostics(&source);
    let found: Vec<(usize, usize, &str)> = d.iter().map(|d| (d.line, d.column, d.path.as_str())).collect();
    let (line, preset) = position_of(&source, "daily");
    let (_, timezone) = position_of(&source, "Mars/");
    assert_eq!(
        found,
        [(line, preset, "/schedule/default/preset"), (line, timezone, "/schedule/default/timezone")],
        "{d:#?}"
    );
}

#[test]
fn a_valid_default_schedule_in_a_timezone_validates() {
    for default in [
        "{cron: '30 6 * * 1-5', timezone: Europe/Vienna}",
        "{cron: '0 2 1 * *', timezone: America/New_York}",
        "{preset: weekly, day: friday, at: '17:45', timezone: Australia/Sydney}",
        "{preset: every_15_minutes}",
    ] {
        let source = with_schedule(&format!("  default: {default}\n"));
        if let Err(d) = manifest::parse("PANDIUM.yaml", &source) {
            panic!("{default}: {d:#?}");
        }
    }
}

#[test]
fn a_manifest_may_offer_every_preset() {
    let presets = "[every_5_minutes, every_10_minutes, every_15_minutes, every_30_minutes, hourly, \
                   every_2_hours, every_4_hours, every_6_hours, every_12_hours, daily, weekly]";
    let source = with_schedule(&format!("  default: {{preset: daily, at: '06:00'}}\n  presets: {presets}\n"));
    if let Err(d) = manifest::parse("PANDIUM.yaml", &source) {
        panic!("{d:#?}");
    }
}
