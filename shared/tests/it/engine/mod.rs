mod http;
mod source;
