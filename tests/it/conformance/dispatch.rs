//! The SQS run dispatcher against moto: what it sends is what the sync
//! function's handler reads back.

use ferry_aws::sqs::{parse_message_body, NoRunQueue};
use ferry_aws::SqsDispatcher;
use ferry_core::ports::{RunDispatcher, RunRef};

use crate::support::aws;

#[tokio::test]
async fn sqs_dispatcher_queues_run_references_the_sync_handler_can_read() {
    let Some((client, url)) = aws::sqs_queue().await else { return };
    let dispatcher = SqsDispatcher::new(client.clone(), url.clone());
    let runs: Vec<RunRef> = (0..3)
        .map(|i| RunRef { tenant: "acme".into(), job: format!("job{i}"), run: format!("01HRUN{i:020}") })
        .collect();
    for run in &runs {
        dispatcher.dispatch(run).await.expect("dispatched");
    }
    let mut received = Vec::new();
    for _ in 0..10 {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in out.messages() {
            received.push(parse_message_body(m.body().expect("a body")).expect("a run reference"));
        }
        if received.len() >= runs.len() {
            break;
        }
    }
    received.sort_by(|a, b| a.job.cmp(&b.job));
    assert_eq!(received, runs);
}

#[tokio::test]
async fn sqs_dispatcher_reports_a_missing_queue() {
    let Some((client, url)) = aws::sqs_queue().await else { return };
    let dispatcher = SqsDispatcher::new(client, format!("{url}-missing"));
    let run = RunRef { tenant: "acme".into(), job: "j".into(), run: "r".into() };
    let err = dispatcher.dispatch(&run).await.expect_err("no such queue");
    assert!(err.to_string().contains("could not dispatch"), "{err}");
}

#[tokio::test]
async fn without_a_queue_runs_are_refused_with_the_setting_to_fix() {
    let run = RunRef { tenant: "acme".into(), job: "j".into(), run: "r".into() };
    let err = NoRunQueue.dispatch(&run).await.expect_err("refused");
    let text = aws::error_chain(&err);
    assert!(text.contains("FERRY_RUN_QUEUE_URL"), "{text}");
}
