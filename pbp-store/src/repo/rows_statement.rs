//! A multi-row statement that diesel may keep prepared.
//!
//! `diesel::sql_query` marks every statement as unsafe to cache, so a batch upsert of a few hundred rows is
//! parsed by the database again for every chunk: on a season replay that parsing was a sixth of all CPU time.
//! [`RowsStatement`] renders the same SQL (a prefix, the rows' placeholders, a suffix) through diesel's own
//! bind placeholders, which leaves it cacheable: chunks of the same size reuse one prepared statement per
//! connection. Chunk sizes are kept to a few values ([`chunk_sizes`]) so that the cache stays small.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, Double, HasSqlType, Integer, Nullable, Text, Untyped};

/// One bound value of a row. An enum rather than a boxed `QueryFragment` per value: a season replay binds
/// some 17 million values, and a box each was a measurable share of the write path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bind<'a> {
    /// `TEXT`.
    Text(&'a str),
    /// Nullable `TEXT`.
    NullableText(Option<&'a str>),
    /// `BIGINT`.
    BigInt(i64),
    /// Nullable `BIGINT`.
    NullableBigInt(Option<i64>),
    /// `INTEGER`.
    Integer(i32),
    /// Nullable `INTEGER`.
    NullableInteger(Option<i32>),
    /// `DOUBLE PRECISION`.
    Double(f64),
    /// `BOOLEAN`.
    Bool(bool),
}

/// `prefix (row), (row), … suffix` with one bound value per column of each row.
pub(crate) struct RowsStatement<'a, DB: Backend> {
    prefix: &'a str,
    suffix: &'a str,
    width: usize,
    binds: Vec<Bind<'a>>,
    backend: PhantomData<DB>,
}

impl<'a, DB: Backend> RowsStatement<'a, DB> {
    /// A statement whose rows have `width` columns, for `rows` rows.
    pub(crate) fn new(prefix: &'a str, suffix: &'a str, width: usize, rows: usize) -> Self {
        Self { prefix, suffix, width, binds: Vec::with_capacity(width * rows), backend: PhantomData }
    }

    /// Binds the next value, row after row.
    pub(crate) fn bind(&mut self, value: Bind<'a>) -> &mut Self {
        self.binds.push(value);
        self
    }
}

impl<DB> QueryFragment<DB> for RowsStatement<'_, DB>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<BigInt> + HasSqlType<Integer> + HasSqlType<Double> + HasSqlType<Bool>,
    str: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    i32: ToSql<Integer, DB>,
    f64: ToSql<Double, DB>,
    bool: ToSql<Bool, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        for (r, row) in self.binds.chunks(self.width.max(1)).enumerate() {
            out.push_sql(if r == 0 { "(" } else { ", (" });
            for (c, value) in row.iter().enumerate() {
                if c > 0 {
                    out.push_sql(", ");
                }
                match value {
                    Bind::Text(v) => out.push_bind_param::<Text, _>(*v)?,
                    Bind::NullableText(v) => out.push_bind_param::<Nullable<Text>, _>(v)?,
                    Bind::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
                    Bind::NullableBigInt(v) => out.push_bind_param::<Nullable<BigInt>, _>(v)?,
                    Bind::Integer(v) => out.push_bind_param::<Integer, _>(v)?,
                    Bind::NullableInteger(v) => out.push_bind_param::<Nullable<Integer>, _>(v)?,
                    Bind::Double(v) => out.push_bind_param::<Double, _>(v)?,
                    Bind::Bool(v) => out.push_bind_param::<Bool, _>(v)?,
                }
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
