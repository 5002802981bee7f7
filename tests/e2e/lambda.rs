//! Serverless packaging: the SAM template against the function crates and the
//! route table (`template`), and the function binaries started as Lambda
//! starts them, against a Runtime API emulator (`runtime`; the console's
//! pages in `console`).

mod console;
mod runtime;
mod sync;
mod template;
