//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod espn;
pub(crate) mod run;
pub(crate) mod schema_registry;
pub(crate) mod topics;
