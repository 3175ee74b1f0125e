//! CQL helpers the read models share.

use scylla::value::MaybeUnset;

/// A client span for one CQL statement, following the database semantic conventions; none in
/// a trace that is not exported (`telemetry::sampled_child`).
pub fn cql_span(operation: &'static str, table: &'static str) -> tracing::Span {
    crate::telemetry::sampled_child(|| {
        tracing::info_span!(
            "cql.statement",
            otel.name = %format_args!("{operation} {table}"),
            otel.kind = "client",
            db.system.name = "cassandra",
            db.operation.name = operation,
            db.collection.name = table,
        )
    })
}

/// Unset instead of null: a null would write a tombstone (or erase what another event wrote).
pub fn unset_if_none(v: Option<&str>) -> MaybeUnset<&str> {
    v.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}
