//! What keeps the console's pages cheap for large tenants (ferry-bench
//! console: 10,000 jobs, 100,000 runs): the dashboard's checklist asks about
//! jobs with a bounded read, and says what it could not decide.

use serde_json::json;

use super::hub_with_admin;
use crate::support::manifests::CRM_SYNC;

#[tokio::test]
async fn a_question_about_a_tenants_jobs_reads_at_most_its_bound_and_says_when_it_stopped_there() {
    let app = hub_with_admin().await;
    app.tenant("acme").await;
    app.publish("crm-sync", CRM_SYNC).await;
    let conn = app.connection("acme", "crm", "pat-secret").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let job = json!({"name": format!("job {i}"), "integration": "crm-sync", "connections": {"crm": conn}, "configs": {"region": "eu"}});
        ids.push(app.job("acme", job).await);
    }
    let jobs = app.hub.jobs();
    assert_eq!(jobs.any_job("acme", 1, |_| true).await.expect("probe"), Some(true), "one job is enough to say yes");
    assert_eq!(jobs.any_job("empty", 1, |_| true).await.expect("probe"), Some(false), "a tenant without jobs");
    assert_eq!(jobs.any_job("acme", 100, |_| false).await.expect("probe"), Some(false), "every job read: a sure no");
    assert_eq!(jobs.any_job("acme", 2, |_| false).await.expect("probe"), None, "stopped at the bound: undecided");
    let last = ids.iter().max().cloned().expect("ids");
    let found = jobs.any_job("acme", 100, |j| j.id == last).await.expect("probe");
    assert_eq!(found, Some(true), "a match among the jobs read");
}
