//! The local Ferry host and the operator CLI.

pub mod cli;
pub mod host;
pub mod publish;
pub mod validate;
