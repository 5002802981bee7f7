//! Application services: the domain operations the API, the CLI and the
//! functions call. Authorization happens before these are called (see
//! `auth::policy`); the services enforce invariants and talk to the ports.

pub mod bootstrap;
pub mod connections;
pub mod integrations;
pub mod jobs;
pub mod keys;
pub mod mappings;
pub mod notifications;
pub mod runs;
pub mod sessions;
pub mod tenants;
pub mod users;

use std::sync::Arc;

use chrono::Duration;

use crate::ports::{Clock, IdGen, SecretStore, Store, SystemClock, UlidGen};

/// Tunables of the hub.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lifetime of a login session token.
    pub session_ttl: Duration,
    /// Timeouts and retries of the engine's outbound requests.
    pub http: crate::engine::http::HttpPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self { session_ttl: Duration::hours(1), http: crate::engine::http::HttpPolicy::default() }
    }
}

/// Everything the domain needs, wired once per process.
#[derive(Clone)]
pub struct Hub {
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGen>,
    pub settings: Settings,
    /// Where queued runs go; `None` executes them in this process.
    pub dispatcher: Option<Arc<dyn crate::ports::RunDispatcher>>,
    /// Where file targets write; flows with file targets fail without one.
    pub files: Option<Arc<dyn crate::ports::FileStore>>,
    /// Where domain events go; `None` publishes nowhere (notifications still queue).
    pub events: Option<Arc<dyn crate::ports::EventBus>>,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>, secrets: Arc<dyn SecretStore>) -> Self {
        Self {
            store,
            secrets,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGen),
            settings: Settings::default(),
            dispatcher: None,
            files: None,
            events: None,
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_ids(mut self, ids: Arc<dyn IdGen>) -> Self {
        self.ids = ids;
        self
    }

    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn crate::ports::RunDispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    pub fn with_files(mut self, files: Arc<dyn crate::ports::FileStore>) -> Self {
        self.files = Some(files);
        self
    }

    pub fn with_events(mut self, events: Arc<dyn crate::ports::EventBus>) -> Self {
        self.events = Some(events);
        self
    }

    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}
