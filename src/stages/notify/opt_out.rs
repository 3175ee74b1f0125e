//! Opt-outs: whether a recipient that sent STOP may still get a message. Whether it did is
//! read through the phone directory (`phones::PhoneDirectory::load`).

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
