//! Connection overrides: any text parses or errs; what parses prints back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsflow::twilio::ConnectionOverrides;

fuzz_target!(|text: &str| {
    if let Ok(o) = ConnectionOverrides::parse(text) {
        let printed = o.to_string();
        assert_eq!(
            ConnectionOverrides::parse(&printed).as_ref(),
            Ok(&o),
            "{printed}"
        );
    }
});
