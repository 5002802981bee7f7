mod scheduler;
mod secrets;
mod store;
