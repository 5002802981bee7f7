//! The dashboard's run numbers come from the run metrics' aggregates, kept as
//! runs end, on the hub's clock: failed runs of the last 24 hours (not
//! "today"), runs ended today, the success rate.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ferry_core::model::metrics::RunEnd;
use ferry_core::model::RunStatus;
use ferry_core::ports::ManualClock;
use ferry_service::metrics::{fold, pending_op};
use ferry_service::Settings;

use super::{member, Browser, ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD};
use crate::support::app::TestApp;

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 7, d, h, 0, 0).single().expect("a time")
}

/// The value of the card with this label.
fn card(html: &str, label: &str) -> String {
    let end = html.find(&format!("<span class=\"stat-label\">{label}</span>")).expect(label);
    let marker = "<span class=\"stat-value\">";
    let start = html[..end].rfind(marker).expect("a value before the label") + marker.len();
    html[start..].split('<').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_dashboard_counts_failed_runs_of_the_last_24_hours_as_runs_end() {
    let clock = Arc::new(ManualClock::new(at(2, 12)));
    let app = TestApp::embedded_with_clock(clock.clone(), Settings::default()).await;
    app.hub.users().bootstrap_admin_user(Some(ADMIN_EMAIL), Some(ADMIN_PASSWORD)).await.expect("admin user");
    app.tenant("acme").await;
    member(&app, "ops@acme.example", &["acme"]).await;
    let runs = [
        (at(1, 13), RunStatus::FailedIntegration), // yesterday, 23 hours ago
        (at(2, 11), RunStatus::FailedTimeout),
        (at(2, 11), RunStatus::Succeeded),
    ];
    for (i, (ended, status)) in runs.into_iter().enumerate() {
        let end = RunEnd {
            tenant: "acme".into(),
            job: "job".into(),
            run: format!("run-{i}"),
            integration: Some("crm-sync".into()),
            day: ended.date_naive(),
            ended_at: Some(ended),
            status,
            duration_ms: Some(1000),
            records_read: 1,
            records_written: 1,
            records_dead_lettered: 0,
        };
        app.hub.store.write(vec![pending_op(&end).expect("op")]).await.expect("run end recorded");
        assert!(fold(&*app.hub.store, "acme", &end.run).await.expect("fold"));
    }

    let mut b = Browser::new(&app.hub);
    b.sign_in("ops@acme.example", PASSWORD).await;
    let html = b.get("/t/acme/").await.text();
    assert_eq!(card(&html, "Failed runs, last 24 hours"), "2", "{html}");
    assert_eq!(card(&html, "Runs ended today"), "2", "today's two; yesterday's failure is not today's");
    assert_eq!(card(&html, "Success rate, last 7 days"), "33%");

    clock.advance(Duration::hours(2));
    let mut b = Browser::new(&app.hub);
    b.sign_in("ops@acme.example", PASSWORD).await;
    let html = b.get("/t/acme/").await.text();
    assert_eq!(card(&html, "Failed runs, last 24 hours"), "1", "yesterday's failure ended 25 hours ago: {html}");
}
