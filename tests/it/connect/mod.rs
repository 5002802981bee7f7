//! Magic links, the connect pages, OAuth2 callbacks and token refresh, against
//! a small OAuth2 token server on loopback (idp.rs) that counts its requests.

mod archived;
mod attacks;
mod catalogue;
mod clients;
mod config_form;
mod idp;
mod links;
mod refresh;
mod verify;
