//! kinesis-peon: a native replacement for Apache Druid's Kinesis indexing
//! task. The modules follow the pipeline (see the README and DESIGN):
//! `spec` → `source` → `input` → `index` → `persist`/`segment` → `storage`
//! → `publish`, driven by `task`; `java` holds the Java and Druid value
//! semantics they share (`scripts/check-layers` keeps the direction).

pub mod index;
pub mod input;
pub mod java;
pub mod metrics;
pub mod persist;
pub mod publish;
pub mod segment;
pub mod source;
pub mod spec;
pub mod storage;
pub mod task;
