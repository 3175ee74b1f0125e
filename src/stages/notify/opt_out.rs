//! Opt-outs: the `phones` read model says whether a recipient sent STOP.

use std::sync::Arc;

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::store::StoreError;

/// Purpose of the one reply carriers expect to a STOP; it is sent even to an opted-out number.
pub const OPT_OUT_CONFIRMATION: &str = "opt_out_confirmation";

/// May a message with `purpose` go to a recipient whose opt-out flag is `opted_out`?
///
/// Opted-out recipients get nothing, with one exception: the confirmation of the opt-out
/// itself, which carriers (CTIA guidelines) expect as the single reply to STOP. A number with
/// no row in `phones` has not opted out.
pub fn may_send(purpose: &str, opted_out: bool) -> bool {
    !opted_out || purpose == OPT_OUT_CONFIRMATION
}

/// Reads `phones.opted_out` with one prepared statement.
#[derive(Clone)]
pub struct OptOuts {
    session: Arc<Session>,
    select: PreparedStatement,
}

impl OptOuts {
    /// Prepare the lookup.
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<OptOuts, StoreError> {
        let select = session
            .prepare(format!(
                "SELECT opted_out FROM {keyspace}.phones WHERE phone = ?"
            ))
            .await
            .map_err(StoreError::prepare("select phones.opted_out"))?;
        Ok(OptOuts { session, select })
    }

    /// Has `phone` opted out? Unknown numbers have not.
    pub async fn is_opted_out(&self, phone: &str) -> Result<bool, StoreError> {
        let row = self
            .session
            .execute_unpaged(&self.select, (phone,))
            .await
            .map_err(StoreError::execute("select phones.opted_out"))?
            .into_rows_result()
            .map_err(StoreError::rows("select phones.opted_out"))?
            .maybe_first_row::<(Option<bool>,)>()
            .map_err(StoreError::rows("select phones.opted_out"))?;
        Ok(row.and_then(|(o,)| o).unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opted_out_numbers_get_only_the_opt_out_confirmation() {
        assert!(may_send("items_ready", false));
        assert!(!may_send("items_ready", true));
        assert!(!may_send("verification_code", true));
        assert!(!may_send("help", true));
        assert!(may_send(OPT_OUT_CONFIRMATION, true));
    }
}
