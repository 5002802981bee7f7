//! Application services: the domain operations the API, the CLI and the
//! functions call. Authorization happens before these are called (see
//! `auth::policy`); the services enforce invariants and talk to the ports.
//!
//! [`Hub`] is the composition root: the ports and settings, wired once per
//! process (the `with_*` builders), and the hub-wide accessors (`store`,
//! [`Hub::net_policy`], [`Hub::public_base`], [`Hub::platform_key`] in
//! `keyring`). The operations live on services, each made by the hub and
//! reached from it by name, whose type says what it is for:
//!
//! - [`Tenants`] (`hub.tenants()`): `tenants`.
//! - [`Users`] (`hub.users()`): `users`, `keys`, `sessions`,
//!   `login_throttle`, `bootstrap`.
//! - [`Connections`] (`hub.connections()`): `connections`, `links`, `oauth`,
//!   `refresh`, `verify`, `redaction` (and `origins`, its URL rules).
//! - [`Integrations`] (`hub.integrations()`): `integrations`, `mappings`,
//!   `customer_configs` (over `config_form`, the one config form builder).
//! - [`Jobs`] (`hub.jobs()`): `jobs`, `schedules`, `job_setup` (with
//!   `Integrations`: what job forms need before a job is saved).
//! - [`Hooks`] (`hub.hooks()`): `hooks::service`.
//! - [`Notifications`] (`hub.notifications()`): `notifications`.
//! - [`Runs`] (`hub.runs()`): `runs`, `reruns`.
//! - [`Metrics`] (`hub.metrics()`): `metrics` (run metrics; their aggregates
//!   are updated by run execution as runs end).
//!
//! A service's fields are what it uses: the ports (as borrowed trait
//! objects), the settings it reads, and the services it calls. Reads of one
//! record by key are `repo::lookups`, shared by all, so services call each
//! other only to change something, one way (docs/architecture.md). The
//! operator's side of runs is the [`Runs`] service (`runs`); how a run
//! executes (lease, bundling, continuation, recovery, the executors) is
//! `execution`, on `Hub` itself because it composes every service. Services
//! that start or stop runs hold `execution::RunControl`, which the hub
//! implements, not the hub.

pub mod activity;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod config_form;
pub mod connections;
pub mod customer_configs;
pub mod dead_letters;
mod execution;
pub mod hooks;
pub mod integrations;
pub mod job_setup;
pub mod jobs;
pub mod keyring;
pub mod keys;
pub mod links;
pub mod login_throttle;
pub mod mappings;
pub mod metrics;
pub mod notifications;
pub mod oauth;
pub mod origins;
mod recent_failures;
pub mod redaction;
pub mod refresh;
pub mod repo;
pub mod request_gate;
pub mod reruns;
pub mod runs;
pub mod schedules;
pub mod session_scope;
pub mod sessions;
pub mod tenants;
pub mod users;
pub mod verify;

use std::sync::Arc;

pub use connections::Connections;
pub use dead_letters::DeadLetters;
pub use hooks::service::Hooks;
pub use integrations::Integrations;
pub use jobs::Jobs;
pub use metrics::Metrics;
pub use notifications::Notifications;
pub use runs::Runs;
pub use tenants::Tenants;
pub use users::Users;

use chrono::Duration;

use ferry_core::ports::{Clock, IdGen, SecretStore, Store, SystemClock, UlidGen};

/// Tunables of the hub; read from flags or the environment by [`config::Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lifetime of a login session token.
    pub session_ttl: Duration,
    /// Timeouts and retries of the engine's outbound requests.
    pub http: ferry_engine::http::HttpPolicy,
    /// Where process integrations (`run:`) live: `<dir>/<integration>/`.
    pub integrations_dir: Option<std::path::PathBuf>,
    /// Longest a process integration may run before it fails as `failed_timeout`.
    pub process_timeout: std::time::Duration,
    /// `PAN_CTX_ENV` for process integrations, e.g. `local`, `prod`.
    pub environment: String,
    /// Longest a declarative run executes in one go before it stops at a
    /// checkpoint and continues (`FERRY_RUN_SLICE_SECS`); Lambda hosts pass
    /// their invocation's deadline instead.
    pub run_slice: Option<std::time::Duration>,
    /// Lets outbound requests (flows, credential checks, notifications, OAuth)
    /// and process integrations reach loopback and private addresses
    /// (`FERRY_ALLOW_PRIVATE_NETWORK=true`, `ferry up --allow-private-network`).
    /// Off by default: a tenant must not reach the hub's own network.
    pub allow_private_network: bool,
    /// Whether process integrations run in bubblewrap (the default) or, with
    /// `FERRY_PROCESS_SANDBOX=off`, as the hub's own user.
    pub process_sandbox: ferry_engine::sandbox::SandboxMode,
    /// Longest a run may take, from its start to its end across continuations
    /// and restarts, before it fails as `failed_timeout` (`FERRY_RUN_BUDGET_SECS`).
    /// Checked at every page and, through the run's stop signal, by the mapping.
    pub run_budget: std::time::Duration,
    /// When wrong passwords make logins wait (`auth::throttle`).
    pub login_throttle: crate::auth::throttle::LoginThrottleSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            session_ttl: Duration::hours(1),
            http: ferry_engine::http::HttpPolicy::default(),
            integrations_dir: None,
            process_timeout: std::time::Duration::from_secs(15 * 60),
            environment: "local".into(),
            run_slice: None,
            allow_private_network: false,
            process_sandbox: Default::default(),
            run_budget: std::time::Duration::from_secs(2 * 60 * 60),
            login_throttle: Default::default(),
        }
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
    pub dispatcher: Option<Arc<dyn ferry_core::ports::RunDispatcher>>,
    /// Where file targets write; flows with file targets fail without one.
    pub files: Option<Arc<dyn ferry_core::ports::FileStore>>,
    /// Base URL end customers and providers reach (magic links, OAuth
    /// redirect URI, webhook URLs and the URLs HubSpot signs).
    pub public_url: Option<config::PublicUrl>,
    /// The platform signing key, read (or created) once per process.
    pub(crate) platform_key: Arc<tokio::sync::OnceCell<Arc<keyring::PlatformKey>>>,
    /// Keeps jobs' schedules; `None` leaves scheduling to whoever reconciles.
    pub scheduler: Option<Arc<dyn ferry_core::ports::Scheduler>>,
    /// Where domain events go; `None` publishes nowhere (notifications still queue).
    pub events: Option<Arc<dyn ferry_core::ports::EventBus>>,
    /// Starts a run in this process when there is no dispatcher: set by
    /// [`Hub::new`], absent from a hub made by [`Hub::dispatching`]. A pointer
    /// set at construction rather than a call in the code, so a binary whose
    /// hub always dispatches does not contain the run engine.
    pub(crate) run_here: Option<fn(Hub, ferry_core::model::Run)>,
    /// The stop signals of the runs this process executes, by run id: a
    /// cancel through this process's API stops its run at once rather than
    /// at the run's next page.
    pub(crate) stops: Arc<std::sync::Mutex<std::collections::HashMap<String, ferry_engine::flow::Stop>>>,
    /// The request budgets and in-flight limits every run's requests pass,
    /// over the store (shared with every other process on it); one per hub,
    /// so this process's runs share its leased tokens and claimed slots.
    pub(crate) gate: Arc<request_gate::StoreGate>,
}

impl Hub {
    /// A hub that executes runs in this process unless given a dispatcher.
    pub fn new(store: Arc<dyn Store>, secrets: Arc<dyn SecretStore>) -> Self {
        Self { run_here: Some(Hub::spawn_run), ..Self::parts(store, secrets) }
    }

    /// A hub that hands every run it starts to `dispatcher` and never
    /// executes one on its own initiative (a Lambda function's: it must not,
    /// the sandbox freezes once the response is sent). Runs it is handed
    /// ([`Hub::execute_dispatched`]) it still executes.
    pub fn dispatching(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        dispatcher: Arc<dyn ferry_core::ports::RunDispatcher>,
    ) -> Self {
        Self { dispatcher: Some(dispatcher), ..Self::parts(store, secrets) }
    }

    fn parts(store: Arc<dyn Store>, secrets: Arc<dyn SecretStore>) -> Self {
        Self {
            store: store.clone(),
            secrets,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UlidGen),
            settings: Settings::default(),
            dispatcher: None,
            files: None,
            public_url: None,
            platform_key: Arc::new(tokio::sync::OnceCell::new()),
            scheduler: None,
            events: None,
            run_here: None,
            stops: Arc::default(),
            // Real time whatever the hub's clock: rates are per real second.
            gate: Arc::new(request_gate::StoreGate::new(store, Arc::new(SystemClock), UlidGen.next_id())),
        }
    }

    pub fn with_public_url(mut self, url: config::PublicUrl) -> Self {
        self.public_url = Some(url);
        self
    }

    /// The settings and public URL of a checked configuration.
    pub fn with_config(mut self, config: config::Config) -> Self {
        self.settings = config.settings;
        self.public_url = config.public_url;
        self
    }

    /// The public URL, for a link or a redirect URI ([`config::public_base`]).
    pub fn public_base(&self) -> ferry_core::error::Result<&config::PublicUrl> {
        config::public_base(self.public_url.as_ref())
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_ids(mut self, ids: Arc<dyn IdGen>) -> Self {
        self.ids = ids;
        self
    }

    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn ferry_core::ports::RunDispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    pub fn with_files(mut self, files: Arc<dyn ferry_core::ports::FileStore>) -> Self {
        self.files = Some(files);
        self
    }

    pub fn with_scheduler(mut self, scheduler: Arc<dyn ferry_core::ports::Scheduler>) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    pub fn with_events(mut self, events: Arc<dyn ferry_core::ports::EventBus>) -> Self {
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

    /// The platform signing key's keeper, over the secret store.
    pub(crate) fn keyring(&self) -> keyring::Keyring<'_> {
        keyring::Keyring { key: &self.platform_key, secrets: self.secrets.as_ref() }
    }

    /// The outbound policy every client of this hub follows.
    pub fn net_policy(&self) -> ferry_net::NetPolicy {
        ferry_net::NetPolicy::new(self.settings.allow_private_network)
    }
}

/// The services: each a borrowed view of the ports it uses (and of the
/// services it calls), made here, found from its type.
impl Hub {
    pub fn tenants(&self) -> Tenants<'_> {
        Tenants {
            store: self.store(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
            jobs: self.jobs(),
            notifications: self.notifications(),
            runs: self,
        }
    }

    pub fn users(&self) -> Users<'_> {
        Users { store: self.store(), clock: self.clock.as_ref(), ids: self.ids.as_ref(), settings: &self.settings }
    }

    pub fn connections(&self) -> Connections<'_> {
        Connections {
            store: self.store(),
            secrets: self.secrets.as_ref(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
            http: &self.settings.http,
            net: self.net_policy(),
            keyring: self.keyring(),
            public_url: self.public_url.as_ref(),
            jobs: self.jobs(),
            hooks: self.hooks(),
            notifications: self.notifications(),
        }
    }

    pub fn integrations(&self) -> Integrations<'_> {
        Integrations { store: self.store(), clock: self.clock.as_ref(), ids: self.ids.as_ref(), jobs: self.jobs() }
    }

    pub fn jobs(&self) -> Jobs<'_> {
        Jobs {
            store: self.store(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
            scheduler: self.scheduler.as_deref(),
            notifications: self.notifications(),
            runs: self,
        }
    }

    pub fn hooks(&self) -> Hooks<'_> {
        Hooks {
            store: self.store(),
            secrets: self.secrets.as_ref(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
            files: self.files.as_deref(),
            public_url: self.public_url.as_ref(),
            jobs: self.jobs(),
        }
    }

    pub fn notifications(&self) -> Notifications<'_> {
        Notifications {
            store: self.store(),
            secrets: self.secrets.as_ref(),
            clock: self.clock.as_ref(),
            ids: self.ids.as_ref(),
            events: self.events.as_deref(),
            net: self.net_policy(),
        }
    }

    pub fn runs(&self) -> Runs<'_> {
        Runs { store: self.store(), clock: self.clock.as_ref(), runs: self }
    }

    pub fn dead_letters(&self) -> DeadLetters<'_> {
        DeadLetters { store: self.store(), files: self.files.as_deref(), clock: self.clock.as_ref(), runs: self }
    }

    pub fn metrics(&self) -> Metrics<'_> {
        Metrics { store: self.store(), clock: self.clock.as_ref() }
    }
}
