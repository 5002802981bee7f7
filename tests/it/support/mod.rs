pub mod app;
pub mod aws;
pub mod jobs;
pub mod manifests;
pub mod outage;
pub mod sandbox;

/// Runs each store suite (`async fn(Arc<dyn Store>)`) as two tests, one on
/// SQLite and one on DynamoDB (moto; skipped or failed as `aws` decides).
macro_rules! both_stores {
    ($($suite:ident => $sqlite:ident, $dynamodb:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = ferry_embedded::SqliteStore::open(&dir.path().join("ferry.db")).expect("sqlite");
            $suite(std::sync::Arc::new(store)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $dynamodb() {
            let Some(store) = $crate::support::aws::dynamo_store().await else { return };
            $suite(std::sync::Arc::new(store)).await;
        }
    )*};
}
