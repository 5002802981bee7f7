mod dispatch;
mod events;
mod files;
mod scheduler;
mod secrets;
mod store;
mod unavailable;
