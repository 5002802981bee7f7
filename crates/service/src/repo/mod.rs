//! Access patterns over the store port: where records live and how they are read.

pub mod filtered;
pub mod keys;
pub mod records;
pub mod run_index;

pub use records::{Page, PageRequest, Versioned};
pub mod lookups;
