//! Typed reads: one prepared statement, its answer as rows of `R`, every failure a
//! [`StoreError`] naming what was being read.

use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

use super::StoreError;

/// Every row of the (unpaged) answer.
pub async fn select_all<R>(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    context: &'static str,
) -> Result<Vec<R>, StoreError>
where
    R: for<'f> DeserializeRow<'f, 'f>,
{
    session
        .execute_unpaged(statement, values)
        .await
        .map_err(StoreError::execute(context))?
        .into_rows_result()
        .map_err(StoreError::rows(context))?
        .rows::<R>()
        .map_err(StoreError::rows(context))?
        .collect::<Result<Vec<R>, _>>()
        .map_err(StoreError::rows(context))
}

/// The first row of the answer, if there is one.
pub async fn select_one<R>(
    session: &Session,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    context: &'static str,
) -> Result<Option<R>, StoreError>
where
    R: for<'f> DeserializeRow<'f, 'f>,
{
    session
        .execute_unpaged(statement, values)
        .await
        .map_err(StoreError::execute(context))?
        .into_rows_result()
        .map_err(StoreError::rows(context))?
        .maybe_first_row::<R>()
        .map_err(StoreError::rows(context))
}
