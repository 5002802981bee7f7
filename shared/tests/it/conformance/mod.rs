mod dispatch;
mod files;
mod scheduler;
mod secrets;
mod store;
