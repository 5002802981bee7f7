//! Ferry's HTTP layer over the services: the admin API ([`api`], one route
//! table), the webhook intake ([`intake`]) and the connect pages end customers
//! use ([`connect`]). Served by `ferry up` and, one family per function, by
//! the Lambda functions.

pub mod api;
pub mod connect;
pub mod intake;
