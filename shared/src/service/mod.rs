//! Application services: the domain operations the API, the CLI and the
//! functions call. Authorization happens before these are called (see
//! `auth::policy`); the services enforce invariants and talk to the ports.

pub mod bootstrap;
pub mod connections;
pub mod customer_configs;
pub mod integrations;
pub mod jobs;
pub mod keyring;
pub mod keys;
pub mod links;
pub mod mappings;
pub mod oauth;
pub mod refresh;
pub mod runs;
pub mod sessions;
pub mod tenants;
pub mod users;
pub mod verify;

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
    /// Base URL end customers reach (magic links, OAuth redirect URI).
    pub public_url: Option<String>,
    /// The platform signing key, read (or created) once per process.
    pub(crate) platform_key: Arc<tokio::sync::OnceCell<Arc<keyring::PlatformKey>>>,
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
            public_url: None,
            platform_key: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// Sets the base URL of the connect pages (no trailing slash needed).
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// The base URL of the connect pages; a local default when none is configured.
    pub fn public_base(&self) -> &str {
        self.public_url.as_deref().unwrap_or("http://127.0.0.1:8080")
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

    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}
