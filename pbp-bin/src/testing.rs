//! Helpers of the unit tests that need PostgreSQL: a schema of the test's own, dropped at the end.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use pbp_store::{PgConfig, PgStore};

/// True when `PBP_REQUIRE_SERVICES` is set (as in CI): a missing service fails the test instead of skipping it.
pub(crate) fn services_required() -> bool {
    std::env::var_os("PBP_REQUIRE_SERVICES").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Runs `sql` with `psql` on `url`.
fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]).output()?;
    anyhow::ensure!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}

/// A PostgreSQL schema dropped when this is dropped (also when the test fails).
pub(crate) struct PgSchema {
    base: String,
    name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Err(error) = psql(&self.base, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)) {
            eprintln!("could not drop the test schema {}: {error}", self.name);
        }
    }
}

/// A PostgreSQL store in a fresh schema of its own (`PBP_TEST_DATABASE_URL`, default the local `test`
/// database), or `None` with a printed reason when PostgreSQL cannot be reached and services are not required.
pub(crate) async fn pg_store() -> anyhow::Result<Option<(PgStore, PgSchema)>> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base =
        std::env::var("PBP_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("pbp_bin_test_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Err(error) = psql(&base, &format!("CREATE SCHEMA {name}")) {
        anyhow::ensure!(!services_required(), "PBP_REQUIRE_SERVICES is set but PostgreSQL is unusable: {error}");
        eprintln!("skipping: PostgreSQL at {base} is unusable ({error}); set PBP_REQUIRE_SERVICES=1 to fail");
        return Ok(None);
    }
    let schema = PgSchema { base: base.clone(), name: name.clone() };
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
    Ok(Some((PgStore::connect(PgConfig::new(url)).await?, schema)))
}
