//! Ferry's records. No AWS types here.

pub mod api_key;
pub mod connection;
pub mod dead_letter;
pub mod ids;
pub mod integration;
pub mod job;
pub mod mapping;
pub mod metrics;
pub mod run;
pub mod run_config;
pub mod tenant;
pub mod user;

pub use api_key::{ApiKey, ApiKeyView, KeyRole, KeyScope};
pub use connection::{AuthKind, Connection, ConnectionStatus, ConnectionView, MASK, MAX_CONCURRENT};
pub use dead_letter::{
    DeadLetter, DeadLetterCategory, DeadLetterCounts, DeadLetterStatus, MappedWith, Replay, ReplayMapping,
};
pub use integration::{Integration, IntegrationView, Release, ReleaseSource, ReleaseSummary, ReleaseView};
pub use job::{Channel, DynamicOptions, Job, JobMapping, JobProblem, JobView, MappingRef, ReleasePin};
pub use mapping::MappingConfig;
pub use run::{Counters, Run, RunMode, RunOptions, RunProgress, RunStatus, Trigger};
pub use run_config::{RecordedMapping, RerunConfig, RunConfig};
pub use tenant::Tenant;
pub use user::{User, UserRole, UserView};
