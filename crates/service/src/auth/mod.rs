//! Authentication material and the authorization policy.

pub mod credentials;
pub mod hashing;
pub mod policy;
pub mod principal;
pub mod throttle;

pub use policy::{authorize, Access};
pub use principal::Principal;
