mod events;
mod secrets;
mod store;
