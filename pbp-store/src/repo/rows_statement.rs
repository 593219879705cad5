//! A multi-row statement that diesel may keep prepared.
//!
//! `diesel::sql_query` marks every statement as unsafe to cache, so a batch upsert of a few hundred rows is
//! parsed by the database again for every chunk: on a season replay that parsing was a sixth of all CPU time.
//! [`RowsStatement`] renders the same SQL (a prefix, the rows' placeholders, a suffix) through diesel's own
//! bind placeholders, which leaves it cacheable: chunks of the same size reuse one prepared statement per
//! connection. Chunk sizes are kept to a few values ([`chunk_sizes`]) so that the cache stays small.

use diesel::backend::Backend;
use diesel::expression::AsExpression;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::sql_types::Untyped;

/// `prefix (row), (row), … suffix` with one bound value per column of each row.
pub(crate) struct RowsStatement<'a, DB: Backend> {
    prefix: &'a str,
    suffix: &'a str,
    width: usize,
    binds: Vec<Box<dyn QueryFragment<DB> + Send + 'a>>,
}

impl<'a, DB: Backend> RowsStatement<'a, DB> {
    /// A statement whose rows have `width` columns, for `rows` rows.
    pub(crate) fn new(prefix: &'a str, suffix: &'a str, width: usize, rows: usize) -> Self {
        Self { prefix, suffix, width, binds: Vec::with_capacity(width * rows) }
    }

    /// Binds the next value, row after row.
    pub(crate) fn bind<ST, T>(mut self, value: T) -> Self
    where
        T: AsExpression<ST>,
        T::Expression: QueryFragment<DB> + Send + 'a,
        ST: diesel::sql_types::SqlType + diesel::sql_types::SingleValue,
    {
        self.binds.push(Box::new(value.as_expression()));
        self
    }
}

impl<DB: Backend> QueryFragment<DB> for RowsStatement<'_, DB> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        for (r, row) in self.binds.chunks(self.width.max(1)).enumerate() {
            out.push_sql(if r == 0 { "(" } else { ", (" });
            for (c, value) in row.iter().enumerate() {
                if c > 0 {
                    out.push_sql(", ");
                }
                value.walk_ast(out.reborrow())?;
            }
            out.push_sql(")");
        }
        out.push_sql(self.suffix);
        Ok(())
    }
}

impl<DB: Backend> QueryId for RowsStatement<'_, DB> {
    type QueryId = ();
    // No static id: diesel caches the prepared statement by its SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> Query for RowsStatement<'_, DB> {
    type SqlType = Untyped;
}

/// Splits `rows` into chunks of at most `max` rows whose sizes are `max` or powers of two, so that a connection
/// prepares at most `log2(max) + 2` distinct statements however the batches are sized.
pub(crate) fn chunk_sizes(rows: usize, max: usize) -> Vec<usize> {
    let max = max.max(1);
    let mut sizes = vec![max; rows / max];
    let mut rest = rows % max;
    while rest > 0 {
        let size = 1 << (usize::BITS - 1 - rest.leading_zeros());
        sizes.push(size);
        rest -= size;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::chunk_sizes;

    #[test]
    fn chunks_are_full_or_powers_of_two() {
        assert_eq!(chunk_sizes(0, 128), Vec::<usize>::new());
        assert_eq!(chunk_sizes(300, 128), vec![128, 128, 32, 8, 4]);
        assert_eq!(chunk_sizes(7, 128), vec![4, 2, 1]);
        assert_eq!(chunk_sizes(256, 128).iter().sum::<usize>(), 256);
    }
}
