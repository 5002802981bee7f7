mod bad_input;
mod canary;
mod integrations;
mod isolation;
mod jobs;
mod mappings;
mod openapi;
mod runs;
