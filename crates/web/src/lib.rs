//! What every router in front of the hub shares, so the admin API, the
//! webhook intake, the connect pages and the console log and read requests
//! the same way: one span per request with its response logged
//! ([`trace`]), and the cookies of the server-rendered pages ([`cookies`]).

pub mod cookies;
pub mod trace;
