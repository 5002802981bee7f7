//! One page of a list whose filters the index cannot express: the index is
//! read in store pages and each item kept or skipped, and the read stops
//! after [`SCAN_READS`] store pages even when the page is not full, so a
//! request costs a bounded number of reads whatever the filter. The page's
//! cursor then points where reading stopped, and a short (even empty) page
//! with a cursor means "go on", not "the end".

use std::collections::VecDeque;

use crate::repo::{records, Page, PageRequest};
use ferry_core::error::Result;
use ferry_core::ports::{Item, Position, Query, Store};

/// Store pages one list page reads at most.
pub const SCAN_READS: usize = 4;
/// Items per store page when filters may drop some.
pub const SCAN_PAGE: u32 = 200;

/// Reads a query's items in index order for one list page. The caller
/// takes or skips each ([`FilteredRead::next`]) until its page is full or
/// the read ends, then makes the page ([`FilteredRead::page`]).
pub struct FilteredRead<'s> {
    store: &'s dyn Store,
    query: Query,
    limit: u32,
    read: u32,
    reads: usize,
    /// Where the next store read starts; `None` once the index is exhausted.
    after: Option<Option<Position>>,
    buffer: VecDeque<Item>,
    last: Option<Position>,
}

impl<'s> FilteredRead<'s> {
    /// `narrows` says whether the filter may drop items; when it cannot, the
    /// store is asked for exactly the page's size.
    pub fn new(store: &'s dyn Store, query: Query, page: &PageRequest, narrows: bool) -> Result<Self> {
        let limit = page.limit()?;
        let after = page.cursor.as_deref().map(|c| records::decode_cursor_of(c, &query)).transpose()?;
        let read = if narrows { SCAN_PAGE.max(limit) } else { limit };
        Ok(Self { store, query, limit, read, reads: 0, after: Some(after), buffer: VecDeque::new(), last: None })
    }

    /// The page's size.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// The next item in index order, or `None` at the index's end or the
    /// read bound.
    pub async fn next(&mut self) -> Result<Option<Item>> {
        while self.buffer.is_empty() {
            let Some(after) = self.after.take() else { return Ok(None) };
            if self.reads == SCAN_READS {
                self.after = Some(after);
                return Ok(None);
            }
            let result = self.store.query(&self.query.clone().limit(self.read).after(after)).await?;
            self.reads += 1;
            self.buffer = result.items.into();
            self.after = result.next.map(Some);
        }
        let item = self.buffer.pop_front();
        self.last = item.as_ref().map(|i| i.position(self.query.index));
        Ok(item)
    }

    /// The page of what the caller took. `ended` says the caller knows
    /// nothing further in index order can match (past a time window).
    pub fn page<T>(self, items: Vec<T>, ended: bool) -> Page<T> {
        let next = if ended {
            None
        } else if items.len() == self.limit() {
            // Full: go on after its last item, if anything follows it.
            (!self.buffer.is_empty() || self.after.is_some()).then_some(self.last).flatten()
        } else {
            // Short: the index ended (no cursor) or the read bound stopped it.
            self.after.flatten()
        };
        Page { items, next_cursor: next.as_ref().map(records::encode_cursor) }
    }
}
