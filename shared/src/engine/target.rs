//! Writing mapped records: HTTP targets in batches, each record with an
//! idempotency key so a retried batch has no duplicate effect.

use minijinja::Value as Ctx;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::http::{HttpClient, HttpError, Outbound};
use super::source::{render_json, with_record, Endpoint};
use super::template::Templates;
use crate::error::{Error, Result};
use crate::manifest::Method;

pub struct HttpTarget<'a> {
    pub endpoint: Endpoint<'a>,
    pub method: Method,
    pub path: &'a str,
    pub headers: &'a std::collections::BTreeMap<String, String>,
    pub batch_size: u32,
    pub body: Option<&'a Value>,
    pub idempotency_key: Option<&'a str>,
}

/// What happened to a batch.
#[derive(Debug)]
pub enum BatchError {
    /// The target refused the records (4xx): count them failed, keep going.
    Refused(String),
    /// The target is unavailable after retries: stop the run, keep state.
    Unavailable(String),
    Other(Error),
}

impl From<Error> for BatchError {
    fn from(e: Error) -> Self {
        BatchError::Other(e)
    }
}

/// Where a flow's records go.
pub enum Sink<'a> {
    Http(HttpTarget<'a>),
    /// Collects options of a dynamic config (init runs).
    Options {
        value: &'a str,
        title: Option<&'a str>,
        collected: Vec<Value>,
    },
}

impl Sink<'_> {
    pub async fn write(
        &mut self,
        records: &[Value],
        ctx: &Ctx,
        http: &HttpClient,
        templates: &Templates,
    ) -> Result<(u64, Vec<String>), BatchError> {
        match self {
            Sink::Http(t) => t.write(records, ctx, http, templates).await,
            Sink::Options { value, title, collected } => {
                for r in records {
                    let rctx = with_record(ctx, r);
                    let v = templates.render(value, &rctx)?;
                    collected.push(match title {
                        Some(t) => serde_json::json!({"const": v, "title": templates.render(t, &rctx)?}),
                        None => Value::String(v),
                    });
                }
                Ok((records.len() as u64, Vec::new()))
            }
        }
    }
}

impl HttpTarget<'_> {
    /// Sends `records` in batches of `batch_size`; returns how many were written
    /// and the refusals of batches the target rejected.
    pub async fn write(
        &self,
        records: &[Value],
        ctx: &Ctx,
        http: &HttpClient,
        templates: &Templates,
    ) -> Result<(u64, Vec<String>), BatchError> {
        let mut written = 0;
        let mut refused = Vec::new();
        for batch in records.chunks(self.batch_size.max(1) as usize) {
            match self.send(batch, ctx, http, templates).await {
                Ok(()) => written += batch.len() as u64,
                Err(BatchError::Refused(why)) => refused.push(why),
                Err(e) => return Err(e),
            }
        }
        Ok((written, refused))
    }

    async fn send(
        &self,
        batch: &[Value],
        ctx: &Ctx,
        http: &HttpClient,
        templates: &Templates,
    ) -> Result<(), BatchError> {
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
            let key =
                if keys.len() == 1 { keys.remove(0) } else { hex::encode(Sha256::digest(keys.join("\n").as_bytes())) };
            headers.push(("Idempotency-Key".into(), key));
        }
        let url = format!("{}/{}", self.endpoint.base_url.trim_end_matches('/'), path.trim_start_matches('/'));
        let method = reqwest::Method::from_bytes(format!("{:?}", self.method).to_uppercase().as_bytes())
            .unwrap_or(reqwest::Method::POST);
        let mut req = Outbound { method, url, headers, body: Some(serde_json::to_vec(&body).unwrap_or_default()) };
        super::auth::apply(&mut req, self.endpoint.auth, self.endpoint.api_key, self.endpoint.secrets)?;
        match http.send(&req, self.endpoint.budget.as_ref().map(|(k, r)| (k.as_str(), *r))).await {
            Ok(_) => Ok(()),
            Err(e @ HttpError::Integration { .. }) => Err(BatchError::Refused(e.to_string())),
            Err(e) => Err(BatchError::Unavailable(e.to_string())),
        }
    }
}
