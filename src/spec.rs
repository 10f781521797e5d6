//! The `index_kinesis` task JSON as Rust types, with its validation.

pub mod granularity;
pub mod period;
pub mod sequence;
pub mod time;
mod validate;

pub use validate::*;
