pub mod app;
pub mod aws;
pub mod jobs;
pub mod manifests;
pub mod outage;
pub mod sandbox;
