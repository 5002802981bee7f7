//! Authentication material and the authorization policy.

pub mod credentials;
pub mod policy;
pub mod principal;

pub use policy::{authorize, Access};
pub use principal::Principal;
