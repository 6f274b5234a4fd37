//! The language's tests, one binary for all (one link instead of four): the corpus of
//! malformed files with their rendered reports, the fast KDL reader against the kdl crate,
//! fuzzing, the glob algebra against globset, the smallest workflows a newcomer writes, and
//! problems many workstreams share.

mod corpus;
mod fast_kdl;
mod fuzz;
mod glob;
mod minimal;
mod shared;
