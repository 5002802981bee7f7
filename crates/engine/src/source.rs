//! Reading a flow's HTTP source page by page: request templates, pagination,
//! record selection, filters, `take`, and incremental cursors. Pages read
//! ahead wait as bytes: the next one, or for offset and page-number
//! pagination up to the source connection's `max_concurrent` of them.

use std::sync::Arc;

use minijinja::Value as Ctx;
use serde_json::Value;

use super::auth::{self, urlencode};
use super::http::{HttpClient, HttpError, Outbound};
use super::template::{get_path, Templates};
use super::throttle::Throttle;
use super::{json_view, page};
use ferry_core::error::{Error, Result};
use ferry_core::manifest::{ApiKeyPlacement, AuthKind, Incremental, Pagination, Request};
use ferry_core::ports::SecretFields;

/// Everything needed to call one connector.
#[derive(Clone)]
pub struct Endpoint<'a> {
    pub base_url: &'a str,
    pub auth: AuthKind,
    pub api_key: Option<&'a ApiKeyPlacement>,
    pub default_headers: Vec<(String, String)>,
    pub secrets: &'a SecretFields,
    /// The request budget and in-flight limit its requests are admitted under.
    pub throttle: Throttle,
    /// The connector's `max_response_bytes`, if it sets one.
    pub max_response_bytes: Option<usize>,
}

impl Endpoint<'_> {
    /// Whether requests to it carry credentials (and so follow no redirect).
    pub fn credentialed(&self) -> bool {
        self.auth != AuthKind::None || !self.secrets.0.is_empty()
    }

    /// `base_url` joined with a path (template or rendered).
    pub fn join(&self, path: &str) -> String {
        format!("{}/{}", self.base_url.trim_end_matches('/'), path.trim_start_matches('/'))
    }

    /// A request to `url` with what every request to this endpoint has, named
    /// in messages by `template` (the path before rendering).
    pub fn request(&self, method: reqwest::Method, url: String, template: &str) -> Result<Outbound> {
        same_origin_as_base(self.base_url, &url)?;
        let mut out = Outbound::new(method, url);
        out.label = Some(self.join(template));
        out.credentialed = self.credentialed();
        out.max_response_bytes = self.max_response_bytes;
        Ok(out)
    }
}

/// Requests stay on the base URL's origin, whatever a rendered path or a
/// `next`/`Link` URL from the answer says: the connection's credentials
/// belong to that origin alone.
fn same_origin_as_base(base: &str, url: &str) -> Result<()> {
    let parsed = |u: &str| reqwest::Url::parse(u).ok();
    match (parsed(base), parsed(url)) {
        (Some(b), Some(u)) if ferry_net::same_origin(&b, &u) => Ok(()),
        (Some(b), Some(u)) => Err(Error::invalid(
            "other_origin",
            format!(
                "a request would leave the connector's origin {} for {}; flows only follow next/Link URLs on their base URL's origin",
                ferry_net::origin_of(&b),
                ferry_net::origin_of(&u)
            ),
        )),
        (None, _) => Err(Error::invalid("invalid_base_url", "the connector's base_url is not an absolute URL")),
        (_, None) => Err(Error::invalid("invalid_url", "a request URL of the flow is not a valid URL")),
    }
}

#[derive(Clone, Copy)]
pub struct SourceSpec<'a> {
    pub request: &'a Request,
    pub records: Option<&'a str>,
    pub filter: Option<&'a str>,
    pub pagination: Option<&'a Pagination>,
    pub incremental: Option<&'a Incremental>,
    pub take: Option<u32>,
}

/// Where the next page comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Next {
    First,
    /// A `next` link of the body or the `Link` header.
    Url {
        url: String,
    },
    /// A cursor token, sent as `name`.
    Param {
        name: String,
        value: String,
    },
    /// Offset and page-number pagination: the reader's counters say where.
    Again,
    Done,
}

/// Where a reader is within its source, between two pages: what a
/// continuation of the run needs to read on from the next page rather than
/// from the first (a source whose requests carry no cursor would otherwise
/// start over in every invocation).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub next: Next,
    /// The number of the next page (`page` in request templates).
    pub page: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Records taken so far, against the source's `take`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub taken: u64,
    /// The cursor value the run's first request sent: the continuation's
    /// requests send it again, whatever the saved cursor became meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One page of selected records and the highest incremental cursor in it.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Value>,
    pub max_cursor: Option<Value>,
    pub number: u32,
    /// Set by substreams: the parent record this page belongs to.
    pub partition: Option<PagePartition>,
}

/// The partition a substream page was read for: its cursor key and the
/// context (with `partition`) its records are mapped in.
#[derive(Debug)]
pub struct PagePartition {
    pub key: String,
    pub ctx: Ctx,
}

pub struct Reader<'a> {
    spec: SourceSpec<'a>,
    endpoint: Endpoint<'a>,
    http: &'a HttpClient,
    templates: &'a Templates,
    next: Next,
    page_number: u32,
    offset: u64,
    taken: u64,
    /// The saved cursor sent with the first request (already moved back by the lookback).
    since: Option<String>,
    /// Records already at hand (webhook payloads), served as one page instead of requests.
    preloaded: Option<Vec<Value>>,
    /// The next pages, already requested, in order (see [`Reader::read_ahead`]).
    ahead: std::collections::VecDeque<tokio::task::JoinHandle<Result<Fetched>>>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        // A flow that stopped early (failure, limit, deadline) needs no further page.
        self.drop_ahead();
    }
}

/// A page's response: headers and the body as received. Parsed by
/// [`Fetched::parse`] only when its turn comes, so the page read ahead waits
/// as its bytes (~10 times smaller than the parsed records).
struct Fetched {
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    /// The request as messages name it.
    url: String,
}

impl Fetched {
    /// The headers, the body without the records at `records`, and the
    /// records (see [`page::split`]); the bytes are freed here.
    fn parse(self, records: Option<&str>) -> Result<(reqwest::header::HeaderMap, page::Split)> {
        if self.body.is_empty() {
            return Ok((self.headers, page::Split { body: Value::Null, records: vec![] }));
        }
        let split = page::split(&self.body, records).map_err(|e| {
            Error::invalid("bad_response", format!("the source did not return JSON ({}): {e}", self.url))
        })?;
        Ok((self.headers, split))
    }
}

async fn fetch(http: HttpClient, req: Outbound, throttle: Throttle) -> Result<Fetched> {
    let res = http.send(&req, Some(&throttle)).await.map_err(http_error)?;
    Ok(Fetched { headers: res.headers, body: res.body, url: req.shown() })
}

/// How many pages a source may read in one run before it is considered runaway.
pub const MAX_PAGES: u32 = 100_000;

impl<'a> Reader<'a> {
    pub fn new(
        spec: SourceSpec<'a>,
        endpoint: Endpoint<'a>,
        http: &'a HttpClient,
        templates: &'a Templates,
        since: Option<String>,
    ) -> Self {
        let start_page = match spec.pagination {
            Some(Pagination::PageNumber { start, .. }) => *start,
            _ => 1,
        };
        Self {
            spec,
            endpoint,
            http,
            templates,
            next: Next::First,
            page_number: start_page,
            offset: 0,
            taken: 0,
            since,
            preloaded: None,
            ahead: Default::default(),
        }
    }

    /// Where the reader is: after the page it returned last.
    pub fn position(&self) -> Position {
        Position {
            next: self.next.clone(),
            page: self.page_number,
            offset: self.offset,
            taken: self.taken,
            since: self.since.clone(),
        }
    }

    /// Reads on from `at` (a position of a reader of the same source) rather
    /// than from the first page.
    pub fn seek(&mut self, at: &Position) {
        self.drop_ahead();
        self.next = at.next.clone();
        self.page_number = at.page;
        self.offset = at.offset;
        self.taken = at.taken;
        self.since = at.since.clone();
    }

    /// A reader over payloads already received (a webhook run's deliveries):
    /// `spec.records` selects the records of each payload, `spec.filter` applies.
    pub fn preloaded(mut self, payloads: Vec<Value>) -> Self {
        self.preloaded = Some(payloads);
        self
    }

    fn preloaded_page(&mut self, payloads: Vec<Value>, ctx: &Ctx) -> Result<Page> {
        super::parallel::off_the_workers(|| self.select_preloaded(payloads, ctx))
    }

    fn select_preloaded(&self, payloads: Vec<Value>, ctx: &Ctx) -> Result<Page> {
        let mut records = Vec::new();
        for payload in payloads {
            let selected = match self.spec.records {
                Some(path) => get_path(&payload, path).cloned().unwrap_or(Value::Null),
                None => payload,
            };
            let items = match selected {
                Value::Array(items) => items,
                Value::Null => vec![],
                other => vec![other],
            };
            for record in items {
                if let Some(record) = keep(self.templates, self.spec.filter, ctx, record)? {
                    records.push(record);
                }
            }
        }
        Ok(Page { records, max_cursor: None, number: 1, partition: None })
    }

    /// The next page, or `None` when the source is exhausted.
    pub async fn next_page(&mut self, ctx: &Ctx) -> Result<Option<Page>> {
        if let Some(payloads) = self.preloaded.take() {
            self.next = Next::Done;
            return self.preloaded_page(payloads, ctx).map(Some);
        }
        if self.next == Next::Done {
            return Ok(None);
        }
        if self.page_number > MAX_PAGES {
            return Err(Error::invalid(
                "runaway_pagination",
                format!("the source returned more than {MAX_PAGES} pages; check its pagination"),
            ));
        }
        let fetched = match self.ahead.pop_front() {
            Some(ahead) => ahead.await.map_err(|e| Error::Internal(format!("reading ahead failed: {e}")))??,
            None => fetch(self.http.clone(), self.build_request(ctx)?, self.throttle()).await?,
        };
        let (headers, page::Split { body, records: raw }) = fetched.parse(self.spec.records)?;
        let raw_count = raw.len();
        let (records, max_cursor) = match self.spec.filter {
            Some(_) => super::parallel::off_the_workers(|| self.select(raw, ctx))?,
            None => self.select(raw, ctx)?,
        };
        let number = self.page_number;
        self.page_number += 1;
        self.next = if self.spec.take.is_some_and(|t| self.taken >= u64::from(t)) || raw_count == 0 {
            Next::Done
        } else {
            self.following(&body, &headers, raw_count)
        };
        drop(body);
        if self.next == Next::Done {
            // Pages fetched ahead past the last one hold nothing the flow
            // needs; they are left to finish rather than cut off, so their
            // slots of the in-flight limit are held until the system answered.
            self.ahead.clear();
        }
        self.read_ahead(ctx);
        Ok(Some(Page { records, max_cursor, number, partition: None }))
    }

    /// Starts fetching the next pages on other tasks, so they arrive while
    /// the caller maps and writes this one. Offset and page-number pages do
    /// not depend on the answer before them: up to the source connection's
    /// `max_concurrent` of them are fetched at once, each waiting as bytes
    /// until its turn; other kinds know only the next page. A request that
    /// cannot be built now is built (and its error reported) by the next call.
    fn read_ahead(&mut self, ctx: &Ctx) {
        if matches!(self.next, Next::Done) {
            return;
        }
        let depth = match self.spec.pagination {
            Some(Pagination::Offset { .. } | Pagination::PageNumber { .. }) => {
                self.endpoint.throttle.in_flight.as_ref().map_or(1, |(_, max)| (*max).max(1) as usize)
            }
            _ => 1,
        };
        let (page, offset) = (self.page_number, self.offset);
        while self.ahead.len() < depth {
            // The queue's first entry is the next page; each after it one page further.
            let k = self.ahead.len() as u32;
            self.page_number = page.saturating_add(k);
            if let Some(Pagination::Offset { limit, .. }) = self.spec.pagination {
                self.offset = offset + u64::from(k) * u64::from(*limit);
            }
            if self.page_number > MAX_PAGES {
                break;
            }
            let Ok(req) = self.build_request(ctx) else { break };
            self.ahead.push_back(tokio::spawn(fetch(self.http.clone(), req, self.throttle())));
        }
        (self.page_number, self.offset) = (page, offset);
    }

    fn drop_ahead(&mut self) {
        for ahead in self.ahead.drain(..) {
            ahead.abort();
        }
    }

    fn throttle(&self) -> Throttle {
        self.endpoint.throttle.clone()
    }

    fn following(&mut self, body: &Value, headers: &reqwest::header::HeaderMap, count: usize) -> Next {
        match self.spec.pagination {
            None => Next::Done,
            Some(Pagination::NextUrl { path }) => match get_path(body, path) {
                Some(Value::String(u)) if !u.is_empty() => Next::Url { url: u.clone() },
                _ => Next::Done,
            },
            Some(Pagination::LinkHeader {}) => headers
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
                .map(|url| Next::Url { url })
                .unwrap_or(Next::Done),
            Some(Pagination::Cursor { path, param }) => match get_path(body, path) {
                Some(Value::String(t)) if !t.is_empty() => Next::Param { name: param.clone(), value: t.clone() },
                Some(Value::Number(n)) => Next::Param { name: param.clone(), value: n.to_string() },
                _ => Next::Done,
            },
            Some(Pagination::Offset { limit, .. }) => {
                if (count as u64) < u64::from(*limit) {
                    Next::Done
                } else {
                    self.offset += u64::from(*limit);
                    Next::Again
                }
            }
            Some(Pagination::PageNumber { size, .. }) => {
                if size.is_some_and(|s| (count as u64) < u64::from(s)) {
                    Next::Done
                } else {
                    Next::Again
                }
            }
        }
    }

    fn build_request(&self, ctx: &Ctx) -> Result<Outbound> {
        let r = self.spec.request;
        // Credentials are in scope only while building the request, so they
        // cannot reach records, files or logs through a template.
        let secrets: std::collections::BTreeMap<&str, &str> = self
            .endpoint
            .secrets
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), secrecy::ExposeSecret::expose_secret(v)))
            .collect();
        let page_ctx = minijinja::context! { page => self.page_number, secrets => secrets, ..ctx.clone() };
        let ctx = &page_ctx;
        let mut template = r.path.clone();
        let mut url = match &self.next {
            Next::Url { url: u } => {
                template.push_str(" (next page)");
                absolute(self.endpoint.base_url, u)
            }
            _ => {
                let path = self.templates.render(&r.path, ctx)?;
                let mut query: Vec<(String, String)> = Vec::new();
                for (k, v) in &r.query {
                    query.push((k.clone(), self.templates.render(v, ctx)?));
                }
                if let (Some(inc), Some(since)) = (self.spec.incremental, &self.since) {
                    if let Some(param) = &inc.param {
                        query.push((param.clone(), since.clone()));
                    }
                }
                match (self.spec.pagination, &self.next) {
                    (Some(Pagination::Cursor { .. }), Next::Param { name, value }) => {
                        query.push((name.clone(), value.clone()))
                    }
                    (Some(Pagination::Offset { offset_param, limit_param, limit }), _) => {
                        query.push((offset_param.clone(), self.offset.to_string()));
                        query.push((limit_param.clone(), limit.to_string()));
                    }
                    (Some(Pagination::PageNumber { param, size_param, size, .. }), _) => {
                        query.push((param.clone(), self.page_number.to_string()));
                        if let (Some(p), Some(s)) = (size_param, size) {
                            query.push((p.clone(), s.to_string()));
                        }
                    }
                    _ => {}
                }
                let mut url = absolute(self.endpoint.base_url, &path);
                for (i, (k, v)) in query.iter().enumerate() {
                    let sep = if i == 0 && !url.contains('?') { '?' } else { '&' };
                    url.push(sep);
                    url.push_str(&urlencode(k));
                    url.push('=');
                    url.push_str(&urlencode(v));
                }
                url
            }
        };
        if url.is_empty() {
            url = self.endpoint.base_url.to_owned();
        }
        let mut headers = self.endpoint.default_headers.clone();
        for (k, v) in &r.headers {
            headers.push((k.clone(), self.templates.render(v, ctx)?));
        }
        let body = match &r.body {
            Some(b) => {
                headers.push(("Content-Type".into(), "application/json".into()));
                Some(serde_json::to_vec(&render_json(b, ctx, self.templates)?).unwrap_or_default())
            }
            None => None,
        };
        let method = reqwest::Method::from_bytes(format!("{:?}", r.method).to_uppercase().as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let mut out = self.endpoint.request(method, url, &template)?;
        out.headers = headers;
        out.body = body;
        auth::apply(&mut out, self.endpoint.auth, self.endpoint.api_key, self.endpoint.secrets)?;
        Ok(out)
    }
}

/// String leaves of a JSON body are templates.
pub fn render_json(v: &Value, ctx: &Ctx, templates: &Templates) -> Result<Value> {
    Ok(match v {
        Value::String(s) => Value::String(templates.render(s, ctx)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| render_json(x, ctx, templates)).collect::<Result<_>>()?),
        Value::Object(m) => Value::Object(
            m.iter().map(|(k, x)| Ok((k.clone(), render_json(x, ctx, templates)?))).collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

/// The context with `record` set, for callers that only borrow the record
/// (it is copied once; owners share theirs through [`json_view::with_record`]).
pub fn with_record(ctx: &Ctx, record: &Value) -> Ctx {
    json_view::with_record(ctx, Arc::new(record.clone()))
}

impl Reader<'_> {
    /// The records of a page that pass the filter and `take`, with the
    /// highest incremental cursor among them.
    fn select(&mut self, raw: Vec<Value>, ctx: &Ctx) -> Result<(Vec<Value>, Option<Value>)> {
        let mut records = Vec::with_capacity(raw.len());
        let mut max_cursor: Option<Value> = None;
        for record in raw {
            if let Some(take) = self.spec.take {
                if self.taken >= u64::from(take) {
                    break;
                }
            }
            let Some(record) = keep(self.templates, self.spec.filter, ctx, record)? else { continue };
            if let Some(inc) = self.spec.incremental {
                if let Some(v) = get_path(&record, &inc.cursor_field) {
                    if max_cursor.as_ref().is_none_or(|m| cursor_gt(v, m)) {
                        max_cursor = Some(v.clone());
                    }
                }
            }
            self.taken += 1;
            records.push(record);
        }
        Ok((records, max_cursor))
    }
}

/// Whether an owned record passes a flow's filter; hands the record back if so.
fn keep(templates: &Templates, filter: Option<&str>, ctx: &Ctx, record: Value) -> Result<Option<Value>> {
    let Some(filter) = filter else { return Ok(Some(record)) };
    let shared = Arc::new(record);
    let passes = templates.is_true(filter, &json_view::with_record(ctx, shared.clone()))?;
    // The condition's context is gone, so the record is ours alone again.
    Ok(passes.then(|| Arc::try_unwrap(shared).unwrap_or_else(|s| (*s).clone())))
}

fn absolute(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        path.to_owned()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

/// Cursor order: numbers numerically, everything else as text (ISO 8601 sorts as text).
pub fn cursor_gt(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x > y,
        _ => cursor_text(a) > cursor_text(b),
    }
}

pub fn cursor_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn http_error(e: HttpError) -> Error {
    match e {
        HttpError::Integration { .. } | HttpError::Unauthorized { .. } => {
            Error::invalid("source_refused", e.to_string())
        }
        HttpError::Refused { .. } => Error::invalid("outbound_refused", e.to_string()),
        HttpError::Redirect { .. } => Error::invalid("redirect_refused", e.to_string()),
        HttpError::TooLarge { .. } => Error::invalid("response_too_large", e.to_string()),
        other => Error::Internal(format!("source unavailable: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_yield_the_next_target() {
        assert_eq!(
            next_link(r#"<https://api.x/items?page=1>; rel="prev", <https://api.x/items?page=3>; rel="next""#),
            Some("https://api.x/items?page=3".into())
        );
        assert_eq!(next_link(r#"<https://api.x/items?page=1>; rel="prev""#), None);
    }

    #[test]
    fn cursors_compare_numbers_numerically_and_dates_as_text() {
        assert!(cursor_gt(&serde_json::json!(10), &serde_json::json!(9)));
        assert!(cursor_gt(&serde_json::json!("2024-02-01T00:00:00Z"), &serde_json::json!("2024-01-31T23:59:59Z")));
    }
}
