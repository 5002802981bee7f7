mod secrets;
mod store;
