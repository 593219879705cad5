//! One module per subcommand; `common` holds the options the pipeline commands share.

pub(crate) mod bench;
pub(crate) mod common;
pub(crate) mod espn;
pub(crate) mod pipelines;
pub(crate) mod replay;
pub(crate) mod schema_registry;
pub(crate) mod topics;
