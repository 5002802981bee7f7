//! Substreams: a child source read once per record of a parent source (the
//! parent's records are the child's partitions, e.g. the messages of every
//! channel). Each partition keeps its own incremental cursor, so a partition
//! that failed does not hold the others back, and a new partition starts from
//! the child's `start` value.

use std::collections::BTreeMap;

use minijinja::Value as Ctx;
use serde_json::Value;

use super::http::HttpClient;
use super::source::{cursor_text, Endpoint, Page, PagePartition, Position, Reader, SourceSpec};
use super::template::{get_path, Templates};
use ferry_core::error::{Error, Result};

/// Where the flow's pages come from: one source, or a child source per parent record.
// One per flow run, on its task's stack: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Pages<'a> {
    Single(Reader<'a>),
    Partitioned(Box<Partitioned<'a>>),
}

impl Pages<'_> {
    pub async fn next_page(&mut self, ctx: &Ctx) -> Result<Option<Page>> {
        match self {
            Pages::Single(r) => r.next_page(ctx).await,
            Pages::Partitioned(p) => p.next_page(ctx).await,
        }
    }

    /// Where the pages are, after the last one returned.
    pub fn position(&self) -> SourcePosition {
        match self {
            Pages::Single(r) => SourcePosition::Single(r.position()),
            Pages::Partitioned(p) => p.position(),
        }
    }

    /// Reads on from `at`; a position of the other kind (the manifest
    /// changed between slices) is ignored: the source starts over.
    pub fn seek(&mut self, at: &SourcePosition) -> bool {
        match (self, at) {
            (Pages::Single(r), SourcePosition::Single(p)) => {
                r.seek(p);
                true
            }
            (Pages::Partitioned(p), at @ SourcePosition::Partitioned { .. }) => {
                p.resume = Some(at.clone());
                true
            }
            _ => false,
        }
    }
}

/// Where a flow's pages are, between two pages.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourcePosition {
    Single(Position),
    /// A substream: the parent's position before the page that listed the
    /// current partition, how many of that page's records were taken (the
    /// current partition is the last of them), and where that partition's
    /// child source is. Partitions read before a continuation are not
    /// remembered as read: a parent listing one again on a later page gets
    /// it read again.
    Partitioned {
        parent: Position,
        taken: usize,
        key: Option<String>,
        child: Option<Position>,
    },
}

/// Turns a saved partition cursor into the value sent with the child's first
/// request (after the lookback window).
pub type SinceFn<'a> = Box<dyn Fn(Option<&Value>) -> Option<String> + Send + Sync + 'a>;

pub struct Partitioned<'a> {
    parent: Reader<'a>,
    /// Dotted path of the parent record field that names the partition.
    field: &'a str,
    child_spec: SourceSpec<'a>,
    child_endpoint: Endpoint<'a>,
    http: &'a HttpClient,
    templates: &'a Templates,
    /// Saved cursors per partition key.
    cursors: BTreeMap<String, Value>,
    since: SinceFn<'a>,
    /// Parent records not yet read, front first.
    queue: std::collections::VecDeque<Value>,
    parent_done: bool,
    current: Option<(Reader<'a>, String, Ctx)>,
    /// Partition keys already read in this run (a parent listing the same
    /// record twice across pages must not read it twice).
    seen: std::collections::HashSet<String>,
    /// The parent's position before the page the queue came from, and how
    /// many of its records were taken from the queue.
    queue_from: Position,
    taken: usize,
    /// Where to read on from, once the parent page it names is read again.
    resume: Option<SourcePosition>,
}

/// How many partitions one run may visit before the parent is considered runaway.
pub const MAX_PARTITIONS: usize = 100_000;

impl<'a> Partitioned<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        parent: Reader<'a>,
        field: &'a str,
        child_spec: SourceSpec<'a>,
        child_endpoint: Endpoint<'a>,
        http: &'a HttpClient,
        templates: &'a Templates,
        cursors: BTreeMap<String, Value>,
        since: SinceFn<'a>,
    ) -> Self {
        let queue_from = parent.position();
        Self {
            parent,
            field,
            child_spec,
            child_endpoint,
            http,
            templates,
            cursors,
            since,
            queue: Default::default(),
            parent_done: false,
            current: None,
            seen: Default::default(),
            queue_from,
            taken: 0,
            resume: None,
        }
    }

    fn position(&self) -> SourcePosition {
        let (key, child) = match &self.current {
            Some((reader, key, _)) => (Some(key.clone()), Some(reader.position())),
            None => (None, None),
        };
        SourcePosition::Partitioned { parent: self.queue_from.clone(), taken: self.taken, key, child }
    }

    async fn next_page(&mut self, ctx: &Ctx) -> Result<Option<Page>> {
        // A continuation: the parent page of the current partition again,
        // without the partitions taken before it.
        let mut child_at = None;
        if let Some(SourcePosition::Partitioned { parent, taken, key, child }) = self.resume.take() {
            self.parent.seek(&parent);
            self.queue_from = parent;
            self.queue.clear();
            let skip = if key.is_some() { taken.saturating_sub(1) } else { taken };
            for _ in 0..skip {
                if self.next_parent(ctx).await?.is_none() {
                    break;
                }
            }
            child_at = key.zip(child);
        }
        loop {
            if let Some((reader, key, pctx)) = &mut self.current {
                match reader.next_page(pctx).await? {
                    Some(mut page) => {
                        page.partition = Some(PagePartition { key: key.clone(), ctx: pctx.clone() });
                        return Ok(Some(page));
                    }
                    None => self.current = None,
                }
            }
            let Some(parent) = self.next_parent(ctx).await? else { return Ok(None) };
            let Some(value) = get_path(&parent, self.field).filter(|v| !v.is_null()) else {
                return Err(Error::invalid(
                    "missing_partition_field",
                    format!("a parent record has no `{}` to partition by", self.field),
                ));
            };
            let key = cursor_text(value);
            if !self.seen.insert(key.clone()) {
                continue;
            }
            if self.seen.len() > MAX_PARTITIONS {
                return Err(Error::invalid(
                    "runaway_partitions",
                    format!("the parent source yielded more than {MAX_PARTITIONS} partitions"),
                ));
            }
            let since = (self.since)(self.cursors.get(&key));
            let pctx = minijinja::context! {
                partition => Ctx::from_serialize(serde_json::json!({ "value": value, "record": parent })),
                ..ctx.clone()
            };
            let mut reader =
                Reader::new(self.child_spec, self.child_endpoint.clone(), self.http, self.templates, since);
            // The partition the continuation stopped in, if the parent still lists it there.
            if let Some((_, at)) = child_at.take().filter(|(k, _)| *k == key) {
                reader.seek(&at);
            }
            self.current = Some((reader, key, pctx));
        }
    }

    async fn next_parent(&mut self, ctx: &Ctx) -> Result<Option<Value>> {
        while self.queue.is_empty() && !self.parent_done {
            let before = self.parent.position();
            match self.parent.next_page(ctx).await? {
                Some(page) if !page.records.is_empty() => {
                    self.queue.extend(page.records);
                    (self.queue_from, self.taken) = (before, 0);
                }
                Some(_) => {}
                None => self.parent_done = true,
            }
        }
        let next = self.queue.pop_front();
        self.taken += usize::from(next.is_some());
        Ok(next)
    }
}
