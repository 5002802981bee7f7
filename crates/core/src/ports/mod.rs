//! Ports: the traits the domain depends on. Each has an embedded and an AWS adapter.

pub mod clock;
pub mod dispatch;
pub mod events;
pub mod files;
pub mod ids;
pub mod scheduler;
pub mod secrets;
pub mod store;
pub mod unavailable;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatch::{DispatchError, RunDispatcher, RunRef};
pub use events::{Event, EventBus, EventError, EventKind};
pub use files::{FileError, FileStore, FileWriter, Upload, UploadedPart};
pub use ids::{IdGen, SequentialIds, UlidGen};
pub use scheduler::{Installed, JobSchedule, ScheduledTick, Scheduler, SchedulerError};
pub use secrets::{SecretError, SecretFields, SecretRef, SecretStore};
pub use store::{Condition, Index, Item, Key, Position, Query, QueryPage, Store, StoreError, WriteOp, MAX_WRITE_OPS};
pub use unavailable::{BoxError, Port, Unavailable};
