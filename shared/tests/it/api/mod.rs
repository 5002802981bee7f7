mod bad_input;
mod canary;
mod isolation;
mod openapi;
