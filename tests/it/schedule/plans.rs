//! Plans: every preset and cron form as fire times and as an EventBridge
//! Scheduler expression, in timezones and across daylight saving changes.

use chrono::{DateTime, Utc};
use ferry_core::manifest::Schedule;
use ferry_core::schedule::{eventbridge, Plan};
use serde_json::{json, Value};

fn plan(v: Value) -> Plan {
    let s: Schedule = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
    Plan::compile(&s).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn problem(v: Value) -> String {
    let s: Schedule = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
    match Plan::compile(&s) {
        Ok(_) => panic!("{v} compiled"),
        Err(e) => e.to_string(),
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc)
}

fn times(p: &Plan, after: &str, n: usize) -> Vec<String> {
    p.upcoming(t(after), n).iter().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).collect()
}

fn aws(v: Value) -> (String, String) {
    let e = eventbridge::expression(&plan(v));
    (e.expression, e.timezone)
}

#[test]
fn every_preset_converts_to_an_anchored_eventbridge_cron() {
    let cases = [
        (json!({"preset": "every_5_minutes"}), "cron(0/5 * * * ? *)"),
        (json!({"preset": "every_10_minutes"}), "cron(0/10 * * * ? *)"),
        (json!({"preset": "every_15_minutes"}), "cron(0/15 * * * ? *)"),
        (json!({"preset": "every_30_minutes"}), "cron(0,30 * * * ? *)"),
        (json!({"preset": "hourly"}), "cron(0 * * * ? *)"),
        (json!({"preset": "every_2_hours"}), "cron(0 0/2 * * ? *)"),
        (json!({"preset": "every_4_hours"}), "cron(0 0/4 * * ? *)"),
        (json!({"preset": "every_6_hours"}), "cron(0 0/6 * * ? *)"),
        (json!({"preset": "every_12_hours"}), "cron(0 0,12 * * ? *)"),
        (json!({"preset": "daily"}), "cron(0 0 * * ? *)"),
        (json!({"preset": "daily", "at": "06:30"}), "cron(30 6 * * ? *)"),
        (json!({"preset": "weekly"}), "cron(0 0 ? * MON *)"),
        (json!({"preset": "weekly", "day": "friday", "at": "17:45"}), "cron(45 17 ? * FRI *)"),
        (json!({"preset": "weekly", "day": "sunday", "at": "23:59"}), "cron(59 23 ? * SUN *)"),
    ];
    for (schedule, want) in cases {
        assert_eq!(aws(schedule.clone()), (want.to_owned(), "UTC".to_owned()), "{schedule}");
    }
}

#[test]
fn cron_forms_convert_exactly() {
    let cases = [
        ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
        ("*/20 8-18 1,15 * *", "cron(0/20 8-18 1,15 * ? *)"),
        ("0 0 * * 0,6", "cron(0 0 ? * SUN,SAT *)"),
        ("0 0 * * 7", "cron(0 0 ? * SUN *)"),
        ("0 0 * * */2", "cron(0 0 ? * SUN,TUE,THU,SAT *)"),
        ("0 12 * JAN,JUL *", "cron(0 12 * 1,7 ? *)"),
        ("5-10,30 * * * *", "cron(5-10,30 * * * ? *)"),
        ("15-59/20 * * * *", "cron(15/20 * * * ? *)"),
        ("0 3 1 */3 *", "cron(0 3 1 1/3 ? *)"),
        ("0 6 * * mon-fri", "cron(0 6 ? * MON-FRI *)"),
    ];
    for (cron, want) in cases {
        assert_eq!(aws(json!({"cron": cron})).0, want, "{cron}");
    }
}

#[test]
fn the_timezone_goes_with_the_expression() {
    assert_eq!(
        aws(json!({"preset": "daily", "at": "09:00", "timezone": "Europe/Paris"})),
        ("cron(0 9 * * ? *)".to_owned(), "Europe/Paris".to_owned())
    );
    assert_eq!(
        aws(json!({"cron": "0 9 * * 1-5", "timezone": "America/New_York"})),
        ("cron(0 9 ? * MON-FRI *)".to_owned(), "America/New_York".to_owned())
    );
}

#[test]
fn interval_presets_are_anchored_to_the_clock_not_to_now() {
    let p = plan(json!({"preset": "every_15_minutes"}));
    assert_eq!(
        times(&p, "2024-05-01T10:07:31Z", 5),
        [
            "2024-05-01T10:15:00Z",
            "2024-05-01T10:30:00Z",
            "2024-05-01T10:45:00Z",
            "2024-05-01T11:00:00Z",
            "2024-05-01T11:15:00Z"
        ]
    );
    // Exactly at a fire time: the next one, never the same one twice.
    assert_eq!(times(&p, "2024-05-01T10:15:00Z", 1), ["2024-05-01T10:30:00Z"]);
    let p = plan(json!({"preset": "every_6_hours"}));
    assert_eq!(
        times(&p, "2024-05-01T05:59:59Z", 4),
        ["2024-05-01T06:00:00Z", "2024-05-01T12:00:00Z", "2024-05-01T18:00:00Z", "2024-05-02T00:00:00Z"]
    );
}

#[test]
fn every_preset_fires_at_its_anchored_times() {
    let after = "2024-05-01T10:07:00Z"; // a Wednesday
    let cases: [(Value, [&str; 2]); 11] = [
        (json!({"preset": "every_5_minutes"}), ["2024-05-01T10:10:00Z", "2024-05-01T10:15:00Z"]),
        (json!({"preset": "every_10_minutes"}), ["2024-05-01T10:10:00Z", "2024-05-01T10:20:00Z"]),
        (json!({"preset": "every_15_minutes"}), ["2024-05-01T10:15:00Z", "2024-05-01T10:30:00Z"]),
        (json!({"preset": "every_30_minutes"}), ["2024-05-01T10:30:00Z", "2024-05-01T11:00:00Z"]),
        (json!({"preset": "hourly"}), ["2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"]),
        (json!({"preset": "every_2_hours"}), ["2024-05-01T12:00:00Z", "2024-05-01T14:00:00Z"]),
        (json!({"preset": "every_4_hours"}), ["2024-05-01T12:00:00Z", "2024-05-01T16:00:00Z"]),
        (json!({"preset": "every_6_hours"}), ["2024-05-01T12:00:00Z", "2024-05-01T18:00:00Z"]),
        (json!({"preset": "every_12_hours"}), ["2024-05-01T12:00:00Z", "2024-05-02T00:00:00Z"]),
        (json!({"preset": "daily", "at": "09:30"}), ["2024-05-02T09:30:00Z", "2024-05-03T09:30:00Z"]),
        (json!({"preset": "weekly", "day": "monday", "at": "08:00"}), ["2024-05-06T08:00:00Z", "2024-05-13T08:00:00Z"]),
    ];
    for (schedule, want) in cases {
        assert_eq!(times(&plan(schedule.clone()), after, 2), want, "{schedule}");
    }
}

#[test]
fn times_of_day_follow_the_timezone() {
    // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    let p = plan(json!({"preset": "daily", "at": "09:00", "timezone": "Europe/Paris"}));
    assert_eq!(times(&p, "2024-01-10T12:00:00Z", 1), ["2024-01-11T08:00:00Z"]);
    assert_eq!(times(&p, "2024-07-10T12:00:00Z", 1), ["2024-07-11T07:00:00Z"]);
    // Hourly in a half-hour zone fires on the local hour.
    let p = plan(json!({"preset": "hourly", "timezone": "Asia/Kolkata"}));
    assert_eq!(times(&p, "2024-05-01T10:00:00Z", 2), ["2024-05-01T10:30:00Z", "2024-05-01T11:30:00Z"]);
}

#[test]
fn a_time_skipped_by_spring_forward_does_not_fire_that_day() {
    // New York skips 02:00-03:00 on 2024-03-10 (EventBridge Scheduler skips such times).
    let p = plan(json!({"preset": "daily", "at": "02:30", "timezone": "America/New_York"}));
    assert_eq!(
        times(&p, "2024-03-08T12:00:00Z", 3),
        ["2024-03-09T07:30:00Z", "2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"]
    );
    // An interval schedule loses the missing hour and carries on.
    let p = plan(json!({"preset": "every_30_minutes", "timezone": "America/New_York"}));
    assert_eq!(
        times(&p, "2024-03-10T06:15:00Z", 3),
        ["2024-03-10T06:30:00Z", "2024-03-10T07:00:00Z", "2024-03-10T07:30:00Z"]
    );
    // 01:30 EST = 06:30Z, then 03:00 EDT = 07:00Z: 02:00 and 02:30 do not exist.
}

#[test]
fn a_time_repeated_by_fall_back_fires_once() {
    // New York repeats 01:00-02:00 on 2024-11-03: 01:30 happens at 05:30Z and 06:30Z.
    let p = plan(json!({"preset": "daily", "at": "01:30", "timezone": "America/New_York"}));
    assert_eq!(
        times(&p, "2024-11-02T12:00:00Z", 3),
        ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z", "2024-11-05T06:30:00Z"]
    );
    // Even when asked from inside the second pass through the hour.
    assert_eq!(times(&p, "2024-11-03T06:00:00Z", 1), ["2024-11-04T06:30:00Z"]);
    // An interval schedule fires through the first pass, then resumes at 02:00.
    let p = plan(json!({"preset": "every_30_minutes", "timezone": "America/New_York"}));
    assert_eq!(
        times(&p, "2024-11-03T04:45:00Z", 4),
        ["2024-11-03T05:00:00Z", "2024-11-03T05:30:00Z", "2024-11-03T07:00:00Z", "2024-11-03T07:30:00Z"]
    );
}

#[test]
fn southern_hemisphere_dst_is_followed_too() {
    // Sydney: clocks go forward on 2024-10-06 at 02:00 (to 03:00).
    let p = plan(json!({"preset": "daily", "at": "02:15", "timezone": "Australia/Sydney"}));
    let fired = times(&p, "2024-10-04T00:00:00Z", 3);
    assert_eq!(fired, ["2024-10-04T16:15:00Z", "2024-10-06T15:15:00Z", "2024-10-07T15:15:00Z"]);
}

#[test]
fn cron_with_a_timezone_fires_on_local_weekdays() {
    let p = plan(json!({"cron": "0 9 * * 1-5", "timezone": "Asia/Tokyo"}));
    // Friday 2024-05-03 09:00 JST = 00:00Z; next is Monday 2024-05-06.
    assert_eq!(times(&p, "2024-05-02T01:00:00Z", 2), ["2024-05-03T00:00:00Z", "2024-05-06T00:00:00Z"]);
}

#[test]
fn schedules_read_in_words() {
    assert_eq!(plan(json!({"preset": "every_15_minutes"})).describe(), "every 15 minutes, UTC time");
    assert_eq!(
        plan(json!({"preset": "weekly", "day": "friday", "at": "17:45", "timezone": "Europe/Vienna"})).describe(),
        "weekly on Friday at 17:45, Europe/Vienna time"
    );
    let cron = plan(json!({"cron": "0 9 * * 1-5"})).describe();
    assert!(cron.contains("cron `0 9 * * 1-5`") && cron.ends_with("UTC time"), "{cron}");
    assert!(cron.to_lowercase().contains("monday") || cron.to_lowercase().contains("09:00"), "{cron}");
}

#[test]
fn bad_schedules_are_refused_naming_the_problem() {
    let p = problem(json!({"cron": "0 25 * * *"}));
    assert!(p.contains("0 25 * * *") && p.contains("hour") && p.contains("25"), "{p}");
    let p = problem(json!({"cron": "0 * * *"}));
    assert!(p.contains("needs 5"), "{p}");
    let p = problem(json!({"cron": "0 0 L * *"}));
    assert!(p.contains("invalid cron"), "{p}");
    let p = problem(json!({"cron": "0 0 1 * 1"}));
    assert!(p.contains("not both"), "{p}");
    let p = problem(json!({"cron": "0 0 30 2 *"}));
    assert!(p.contains("never fires"), "{p}");
    let p = problem(json!({"preset": "hourly", "timezone": "Mars/Olympus_Mons"}));
    assert!(p.contains("unknown timezone `Mars/Olympus_Mons`"), "{p}");
    let p = problem(json!({"cron": "0 0 * * *", "timezone": "CEST"}));
    assert!(p.contains("unknown timezone `CEST`"), "{p}");
    let p = problem(json!({"preset": "daily", "at": "25:00"}));
    assert!(p.contains("HH:MM") && p.contains("25:00"), "{p}");
    let p = problem(json!({"preset": "hourly", "at": "10:00"}));
    assert!(p.contains("`at` only applies"), "{p}");
    let p = problem(json!({"preset": "daily", "day": "monday"}));
    assert!(p.contains("`day` only applies"), "{p}");
}
