//! Schedules: fire times, words and EventBridge expressions of plans; the
//! scheduler driving runs through the API and the run lease.

mod delivery;
mod plans;
