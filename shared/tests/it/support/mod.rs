pub mod app;
pub mod aws;
pub mod manifests;
