//! Writing mapped records: HTTP targets in batches, each record with an
//! idempotency key so a retried batch has no duplicate effect.

use ferry_core::crypto::sha256_hex;
use minijinja::Value as Ctx;
use serde_json::Value;

use super::http::{HttpClient, HttpError};
use super::resume::FileResume;
use super::source::{render_json, with_record, Endpoint};
use super::template::Templates;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{FileFormat, Method, Rejections};
use ferry_core::ports::FileWriter;

pub struct HttpTarget<'a> {
    pub endpoint: Endpoint<'a>,
    pub method: Method,
    pub path: &'a str,
    pub headers: &'a std::collections::BTreeMap<String, String>,
    pub batch_size: u32,
    pub body: Option<&'a Value>,
    pub idempotency_key: Option<&'a str>,
    /// Where a successful answer names the records of the batch that failed.
    pub rejections: Option<&'a Rejections>,
    /// The flow's `ordered`: one batch in flight, so records arrive in order.
    pub ordered: bool,
}

/// A record of a written page the target did not accept.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Its position in the page handed to [`Sink::write`].
    pub index: usize,
    /// The refusal, from the request's path template and status: safe to log.
    pub error: String,
    /// An excerpt of what the target answered about it, which may echo what
    /// it was sent: kept only after the caller masked secrets in it.
    pub excerpt: Option<String>,
}

/// What became of a page handed to a sink.
#[derive(Debug, Default)]
pub struct WriteReport {
    pub written: u64,
    /// In page order. With `stop_at_rejection`, the records after the
    /// first refused batch were not sent and are in neither count.
    pub rejected: Vec<Rejected>,
}

/// The most characters of a target's answer kept with a refusal.
const EXCERPT_CHARS: usize = 200;

/// What happened to a batch.
#[derive(Debug)]
pub enum BatchError {
    /// The target refused the records (4xx): count them failed, keep going.
    /// The excerpt of its answer is the caller's to mask.
    Refused(String, Option<String>),
    /// The target is unavailable after retries: stop the run, keep state.
    Unavailable(String),
    Other(Error),
}

/// A batch's rendered path, body and headers.
type Rendered = (String, Value, Vec<(String, String)>);

impl From<Error> for BatchError {
    fn from(e: Error) -> Self {
        BatchError::Other(e)
    }
}

/// Where a flow's records go.
pub enum Sink<'a> {
    Http(HttpTarget<'a>),
    /// A flat file, committed at the end of the flow.
    File(FileSink<'a>),
    /// Collects options of a dynamic config (init runs).
    Options {
        value: &'a str,
        title: Option<&'a str>,
        collected: Vec<Value>,
    },
}

impl Sink<'_> {
    /// Writes a page; with `stop_at_rejection`, nothing after the first
    /// refused batch is sent.
    pub async fn write(
        &mut self,
        records: &[Value],
        ctx: &Ctx,
        http: &HttpClient,
        templates: &Templates,
        stop_at_rejection: bool,
    ) -> Result<WriteReport, BatchError> {
        let written = |n| WriteReport { written: n, ..Default::default() };
        match self {
            Sink::Http(t) => t.write(records, ctx, http, templates, stop_at_rejection).await,
            Sink::File(f) => f.write(records).await.map(written).map_err(BatchError::Other),
            Sink::Options { value, title, collected } => {
                for r in records {
                    let rctx = with_record(ctx, r);
                    let v = templates.render(value, &rctx)?;
                    collected.push(match title {
                        Some(t) => serde_json::json!({"const": v, "title": templates.render(t, &rctx)?}),
                        None => Value::String(v),
                    });
                }
                Ok(written(records.len() as u64))
            }
        }
    }
}

impl Sink<'_> {
    /// File sinks only make records durable on commit, so their cursor is saved
    /// once, after the commit, rather than after each page.
    pub fn saves_state_per_page(&self) -> bool {
        !matches!(self, Sink::File(_))
    }

    /// Whether the flow may stop between pages and a continuation pick up
    /// from a checkpoint: what an HTTP target accepted stands on its own, a
    /// file goes on from its durable point; options are stored together.
    pub fn resumable(&self) -> bool {
        !matches!(self, Sink::Options { .. })
    }

    /// A file's durable point, when all it was given is durable: the flow
    /// may checkpoint the page it wrote last. `sync` first makes what it can durable.
    pub async fn durable_file(&mut self, sync: bool) -> Result<Option<FileResume>> {
        let Sink::File(f) = self else { return Ok(None) };
        let Some(w) = f.writer.as_mut() else { return Ok(None) };
        let upload = if sync { w.sync().await? } else { w.durable() };
        Ok(upload.filter(|u| u.bytes == w.written()).map(|upload| FileResume {
            upload,
            columns: f.columns.clone(),
            header_written: f.header_written,
            cursor: None,
            partitions: Default::default(),
        }))
    }

    /// Finishes the sink (commits a file) once every page was written.
    pub async fn finish(&mut self) -> Result<()> {
        match self {
            Sink::File(f) => f.commit().await,
            _ => Ok(()),
        }
    }

    /// Discards what a failed flow wrote to a file.
    pub async fn abandon(&mut self) {
        if let Sink::File(f) = self {
            if let Some(w) = f.writer.take() {
                let _ = w.abort().await;
            }
        }
    }
}

/// JSON Lines or CSV into the file store, one file per flow run.
pub struct FileSink<'a> {
    pub format: FileFormat,
    /// CSV column order; the first record's fields when empty.
    pub columns: Vec<String>,
    pub writer: Option<Box<dyn FileWriter>>,
    pub header_written: bool,
    /// A page's lines or rows, reused from page to page: a page is one write,
    /// so the file's durable points fall between pages.
    pub buf: Vec<u8>,
    pub path: String,
    pub _marker: std::marker::PhantomData<&'a ()>,
}

impl FileSink<'_> {
    /// A sink going on with an unfinished file as its checkpoint left it.
    pub fn resumed(format: FileFormat, at: &FileResume, writer: Box<dyn FileWriter>) -> Self {
        let mut sink = Self::new(format, at.columns.clone(), writer, at.upload.path.clone());
        sink.header_written = at.header_written;
        sink
    }

    pub fn new(format: FileFormat, columns: Vec<String>, writer: Box<dyn FileWriter>, path: String) -> Self {
        Self {
            format,
            columns,
            writer: Some(writer),
            header_written: false,
            buf: Vec::new(),
            path,
            _marker: std::marker::PhantomData,
        }
    }

    async fn write(&mut self, records: &[Value]) -> Result<u64> {
        self.buf.clear();
        match self.format {
            FileFormat::Jsonl => {
                // Serialising is pure per-record work: a large page's lines are
                // made on every CPU, a part per thread, and written in order.
                let parts = super::parallel::chunks(records, |part| {
                    let mut lines = Vec::with_capacity(part.len() * 128);
                    for r in part {
                        serde_json::to_writer(&mut lines, r)?;
                        lines.push(b'\n');
                    }
                    Ok::<_, serde_json::Error>(lines)
                });
                for part in parts {
                    self.buf.extend_from_slice(&part.map_err(|e| Error::Internal(e.to_string()))?);
                }
            }
            FileFormat::Csv => {
                if self.columns.is_empty() {
                    if let Some(Value::Object(m)) = records.first() {
                        self.columns = m.keys().cloned().collect();
                    }
                }
                let mut w = csv::WriterBuilder::new().from_writer(&mut self.buf);
                let csv_err = |e: csv::Error| Error::Internal(format!("CSV: {e}"));
                if !self.header_written && !self.columns.is_empty() {
                    w.write_record(&self.columns).map_err(csv_err)?;
                    self.header_written = true;
                }
                for r in records {
                    let row = self.columns.iter().map(|c| match r.get(c) {
                        None | Some(Value::Null) => String::new(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    });
                    w.write_record(row).map_err(csv_err)?;
                }
                w.flush().map_err(|e| Error::Internal(format!("CSV: {e}")))?;
            }
        }
        let writer = self.writer.as_mut().ok_or_else(|| Error::Internal("file already committed".into()))?;
        writer.write(&self.buf).await?;
        Ok(records.len() as u64)
    }

    async fn commit(&mut self) -> Result<()> {
        match self.writer.take() {
            Some(w) => Ok(w.commit().await?),
            None => Ok(()),
        }
    }
}

impl HttpTarget<'_> {
    /// How many batches may be in flight at once: the connection's
    /// `max_concurrent` (one when it sets none), one for an ordered flow.
    /// The flow keeps as many pages in flight; the connection's in-flight
    /// limit, which every request passes, holds the batches of all of them
    /// to this number.
    pub fn in_flight(&self) -> usize {
        match (&self.endpoint.throttle.in_flight, self.ordered) {
            (Some((_, max)), false) => (*max).max(1) as usize,
            _ => 1,
        }
    }

    /// Sends `records` in batches of `batch_size`, up to [`Self::in_flight`]
    /// at once (one at a time with `stop_at_rejection`, so nothing after a
    /// refused batch is sent); reports how many were written and which the
    /// target refused (a whole batch on a 4xx, the records a partial-failure
    /// answer names), in page order.
    pub async fn write(
        &self,
        records: &[Value],
        ctx: &Ctx,
        http: &HttpClient,
        templates: &Templates,
        stop_at_rejection: bool,
    ) -> Result<WriteReport, BatchError> {
        use futures_util::stream::{FuturesOrdered, StreamExt};
        let mut report = WriteReport::default();
        let size = self.batch_size.max(1) as usize;
        let lanes = if stop_at_rejection { 1 } else { self.in_flight() };
        let mut batches = records.chunks(size);
        let mut outcomes = FuturesOrdered::new();
        let mut offset = 0;
        loop {
            while outcomes.len() < lanes {
                let Some(batch) = batches.next() else { break };
                outcomes.push_back(self.send_counted(batch, ctx, http, templates));
            }
            let Some((len, outcome)) = outcomes.next().await else { break };
            match outcome {
                Ok(failed) => {
                    report.written += (len - failed.len()) as u64;
                    report.rejected.extend(failed.into_iter().map(|mut r| {
                        r.index += offset;
                        r
                    }));
                }
                Err(BatchError::Refused(error, excerpt)) => {
                    report.rejected.extend((0..len).map(|i| Rejected {
                        index: offset + i,
                        error: error.clone(),
                        excerpt: excerpt.clone(),
                    }));
                }
                // Batches still in flight are dropped: the flow stops at its
                // last checkpoint and their records are sent again later.
                Err(e) => return Err(e),
            }
            offset += len;
            if stop_at_rejection && !report.rejected.is_empty() {
                break;
            }
        }
        Ok(report)
    }

    /// The batch's path, body and headers (idempotency key included).
    fn render(&self, batch: &[Value], ctx: &Ctx, templates: &Templates) -> Result<Rendered> {
        let single = batch.len() == 1 && self.batch_size == 1;
        let bctx = if single {
            with_record(ctx, &batch[0])
        } else {
            minijinja::context! { records => Ctx::from_serialize(batch), ..ctx.clone() }
        };
        let path = templates.render(self.path, &bctx)?;
        let body = match self.body {
            Some(b) => render_json(b, &bctx, templates)?,
            None if single => batch[0].clone(),
            None => Value::Array(batch.to_vec()),
        };
        let mut headers = self.endpoint.default_headers.clone();
        headers.push(("Content-Type".into(), "application/json".into()));
        for (k, v) in self.headers {
            headers.push((k.clone(), templates.render(v, &bctx)?));
        }
        if let Some(tpl) = self.idempotency_key {
            let mut keys = Vec::with_capacity(batch.len());
            for r in batch {
                keys.push(templates.render(tpl, &with_record(ctx, r))?);
            }
            // One key per record; a batch's key is derived from its records' keys,
            // so retrying the same batch repeats the same key.
            let key = if keys.len() == 1 { keys.remove(0) } else { sha256_hex(keys.join("\n")) };
            headers.push(("Idempotency-Key".into(), key));
        }
        Ok((path, body, headers))
    }

    /// [`Self::send`], with the batch's length.
    async fn send_counted(
        &self,
        batch: &[Value],
        ctx: &Ctx,
        http: &HttpClient,
        templates: &Templates,
    ) -> (usize, Result<Vec<Rejected>, BatchError>) {
        (batch.len(), self.send(batch, ctx, http, templates).await)
    }

    async fn send(
        &self,
        batch: &[Value],
        ctx: &Ctx,
        http: &HttpClient,
        templates: &Templates,
    ) -> Result<Vec<Rejected>, BatchError> {
        let (path, body, headers) = super::parallel::off_the_workers(|| self.render(batch, ctx, templates))?;
        let url = self.endpoint.join(&path);
        let method = reqwest::Method::from_bytes(format!("{:?}", self.method).to_uppercase().as_bytes())
            .unwrap_or(reqwest::Method::POST);
        let mut req = self.endpoint.request(method, url, self.path)?;
        req.headers = headers;
        req.body = Some(serde_json::to_vec(&body).unwrap_or_default());
        super::auth::apply(&mut req, self.endpoint.auth, self.endpoint.api_key, self.endpoint.secrets)?;
        match http.send(&req, Some(&self.endpoint.throttle)).await {
            Ok(answer) => Ok(match self.rejections {
                Some(r) => named_in_answer(r, batch, &answer.body, answer.status, &req.shown()),
                None => Vec::new(),
            }),
            Err(HttpError::Integration { status, url, snippet }) => {
                let excerpt = excerpt(&snippet);
                Err(BatchError::Refused(format!("HTTP {status} from {url}"), excerpt))
            }
            // A redirected write did not land where it was sent: the batch failed.
            Err(e @ HttpError::Redirect { .. }) => Err(BatchError::Refused(e.to_string(), None)),
            Err(e) => Err(BatchError::Unavailable(e.to_string())),
        }
    }
}

/// The records of `batch` a successful answer lists as failed (see
/// [`Rejections`]), in batch order, each once. An answer that is not JSON,
/// or has no list at the path, names none: the target accepted the batch.
fn named_in_answer(r: &Rejections, batch: &[Value], body: &[u8], status: u16, shown: &str) -> Vec<Rejected> {
    use super::template::get_path;
    let Ok(answer) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let Some(Value::Array(entries)) = get_path(&answer, &r.path) else { return Vec::new() };
    let mut named: std::collections::BTreeMap<usize, Option<String>> = Default::default();
    for entry in entries {
        let message = r.message.as_deref().and_then(|m| get_path(entry, m)).map(|m| match m {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let mut mark = |i: usize| {
            let slot = named.entry(i).or_default();
            if slot.is_none() {
                slot.clone_from(&message);
            }
        };
        if let Some(path) = &r.index {
            let index = get_path(entry, path).and_then(|v| match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            });
            if let Some(i) = index.map(|i| i as usize).filter(|i| *i < batch.len()) {
                mark(i);
            }
        } else if let Some(key) = &r.key {
            let names: Vec<&Value> = match get_path(entry, &key.entry) {
                Some(Value::Array(list)) => list.iter().collect(),
                Some(v) => vec![v],
                None => Vec::new(),
            };
            for (i, record) in batch.iter().enumerate() {
                let Some(field) = get_path(record, &key.record) else { continue };
                if names.iter().any(|n| same_key(n, field)) {
                    mark(i);
                }
            }
        }
    }
    named
        .into_iter()
        .map(|(index, message)| Rejected {
            index,
            error: format!("HTTP {status} from {shown}: the answer lists this record as failed"),
            excerpt: message.as_deref().and_then(excerpt),
        })
        .collect()
}

/// Keys compare by value, a number and its text alike (`7` names `"7"`).
fn same_key(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    a == b || text(a).is_some_and(|t| Some(t) == text(b))
}

/// The start of a target's answer, on one line; `None` when empty.
fn excerpt(text: &str) -> Option<String> {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return None;
    }
    let mut out: String = flat.chars().take(EXCERPT_CHARS).collect();
    if flat.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    Some(out)
}
