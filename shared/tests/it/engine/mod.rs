mod fake;
mod flow;
mod http;
mod source;
