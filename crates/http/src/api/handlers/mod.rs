//! Thin HTTP handlers: extract, call the hub, shape the response.

pub mod activity;
pub mod connections;
pub mod dead_letters;
pub mod health;
pub mod integrations;
pub mod jobs;
pub mod keys;
pub mod links;
pub mod mappings;
pub mod metrics;
pub mod notifications;
pub mod oauth_clients;
pub mod reruns;
pub mod runs;
pub mod sessions;
pub mod tenants;
pub mod users;
pub mod webhooks;

use serde::Serialize;
use utoipa::ToSchema;

use ferry_service::repo::Page;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    pub fn from_page<U>(page: Page<U>, f: impl Fn(&U) -> T) -> Self {
        Self { items: page.items.iter().map(f).collect(), next_cursor: page.next_cursor }
    }
}
