//! Inbound webhooks: signature checks ([`verify`]), the domain operations
//! ([`service`]: hooks, durable deliveries, what webhook runs read) and the
//! HTTP intake ([`intake`]) served by `ferry up` and the `webhooks` function.

pub mod service;
pub mod verify;
