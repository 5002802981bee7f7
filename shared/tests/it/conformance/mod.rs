mod dispatch;
mod files;
mod secrets;
mod store;
