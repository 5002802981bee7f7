//! The local Ferry host and the operator CLI.

pub mod admin;
pub mod cli;
pub mod client;
pub mod host;
pub mod publish;
pub mod run;
pub mod schedules;
pub mod ticks;
pub mod validate;
