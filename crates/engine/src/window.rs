//! A flow's pages at its target: handed over in the order they were read,
//! their outcomes taken back in that order. An HTTP target whose connection
//! allows several requests in flight gets the next pages while the batches
//! of earlier ones are still out, so with one batch per page concurrency
//! still helps; the flow commits each page (dead letters, cursor,
//! checkpoint) only once every page before it has its outcome, so nothing
//! it saves passes a record the target has not answered for.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::stream::{FuturesOrdered, StreamExt};
use minijinja::Value as Ctx;
use serde_json::Value;

use super::http::HttpClient;
use super::target::{BatchError, HttpTarget, Sink, WriteReport};
use super::template::Templates;

/// A page's outcome at the target, the records it was given, and what the
/// flow kept of the page until then.
pub struct Written<P> {
    pub result: Result<WriteReport, BatchError>,
    pub records: Vec<Value>,
    pub page: P,
}

type Flight<'s, P> = Pin<Box<dyn Future<Output = Written<P>> + Send + 's>>;

pub enum Writes<'s, 't, P> {
    /// Each page written when it is handed over: files and options.
    OneByOne { sink: &'s mut Sink<'t>, done: Option<Written<P>> },
    /// Up to `pages` pages at an HTTP target at once (its batches in flight).
    Window {
        target: &'s HttpTarget<'t>,
        pages: usize,
        flying: FuturesOrdered<Flight<'s, P>>,
        /// Outcomes taken from `flying` while the flow did something else, in order.
        ready: VecDeque<Written<P>>,
    },
}

impl<'s, 't: 's, P: Send + 's> Writes<'s, 't, P> {
    pub fn new(sink: &'s mut Sink<'t>) -> Self {
        match sink {
            // With one batch in flight, a window of one page: each page is
            // written, then committed, before the next is handed over.
            Sink::Http(target) => Writes::Window {
                pages: target.in_flight(),
                target,
                flying: FuturesOrdered::new(),
                ready: VecDeque::new(),
            },
            sink => Writes::OneByOne { sink, done: None },
        }
    }

    /// Whether the oldest page's outcome must be taken before another page is handed over.
    pub fn full(&self) -> bool {
        match self {
            Writes::OneByOne { done, .. } => done.is_some(),
            Writes::Window { pages, flying, ready, .. } => flying.len() + ready.len() >= *pages,
        }
    }

    /// Hands a page's records to the target.
    pub async fn send(
        &mut self,
        records: Vec<Value>,
        ctx: Ctx,
        http: &'s HttpClient,
        templates: &'s Templates,
        stop_at_rejection: bool,
        page: P,
    ) {
        match self {
            Writes::OneByOne { sink, done } => {
                let result = sink.write(&records, &ctx, http, templates, stop_at_rejection).await;
                *done = Some(Written { result, records, page });
            }
            Writes::Window { target, flying, .. } => {
                let target: &'s HttpTarget<'t> = target;
                flying.push_back(Box::pin(async move {
                    let result = target.write(&records, &ctx, http, templates, stop_at_rejection).await;
                    Written { result, records, page }
                }));
            }
        }
    }

    /// The oldest page's outcome, once every batch of it has one; `None`
    /// when no page is at the target.
    pub async fn next(&mut self) -> Option<Written<P>> {
        match self {
            Writes::OneByOne { done, .. } => done.take(),
            Writes::Window { flying, ready, .. } => match ready.pop_front() {
                Some(done) => Some(done),
                None => flying.next().await,
            },
        }
    }

    /// Awaits `work` (reading or mapping the next page) while the pages at
    /// the target go on: a batch holds its slot of the in-flight limit
    /// until its answer is read, and a source sharing that limit would
    /// otherwise wait for slots held by batches nobody reads.
    pub async fn meanwhile<F: Future>(&mut self, work: F) -> F::Output {
        let Writes::Window { flying, ready, .. } = self else { return work.await };
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(done)) = flying.poll_next_unpin(cx) {
                ready.push_back(done);
            }
            work.as_mut().poll(cx)
        })
        .await
    }

    /// The sink, when it takes pages one at a time (a file's checkpoints need it).
    pub fn sink(&mut self) -> Option<&mut Sink<'t>> {
        match self {
            Writes::OneByOne { sink, .. } => Some(sink),
            Writes::Window { .. } => None,
        }
    }
}
