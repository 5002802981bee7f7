//! Ferry's records. No AWS types here.

pub mod api_key;
pub mod connection;
pub mod ids;
pub mod integration;
pub mod job;
pub mod run;
pub mod tenant;
pub mod user;

pub use api_key::{ApiKey, ApiKeyView, KeyRole};
pub use connection::{AuthKind, Connection, ConnectionStatus, ConnectionView, MASK};
pub use integration::{Integration, Release};
pub use job::{Channel, Job, ReleasePin};
pub use run::{Counters, Run, RunMode, RunStatus, Trigger};
pub use tenant::Tenant;
pub use user::{User, UserRole, UserView};
