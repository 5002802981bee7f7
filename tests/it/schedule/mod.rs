//! Schedules: fire times, words and EventBridge expressions of plans; the
//! scheduler driving runs through the API and the run lease.

mod defaults;
mod delivery;
mod plans;
