//! Runtime fidelity tests of the Lambda function binaries (being written).
