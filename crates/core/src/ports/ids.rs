//! Identifier generation as a port, so tests get predictable ids.

use std::sync::atomic::{AtomicU64, Ordering};

/// Generates the random part of entity ids. Ids are lowercase, time-ordered
/// (ULID) strings, so listing by id is listing by creation order.
pub trait IdGen: Send + Sync + 'static {
    fn next_id(&self) -> String;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UlidGen;

impl IdGen for UlidGen {
    fn next_id(&self) -> String {
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    }
}

/// Deterministic ids `00000000000000000000000001`, `...02`, ... for tests.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGen for SequentialIds {
    fn next_id(&self) -> String {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{n:026}")
    }
}
