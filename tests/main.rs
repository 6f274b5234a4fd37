//! End-to-end tests of the `flow` binary.

mod examples;
mod support;
