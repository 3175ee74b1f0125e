//! The signature check on arbitrary URLs, parameters and headers: never panics; what
//! `compute` signs verifies, also through the fragment candidates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsflow::ingress::signature::{candidate_urls, compute, is_valid, is_valid_for_any};

fuzz_target!(
    |input: (String, Vec<(String, String)>, String, Vec<String>)| {
        let (url, params, header, configured) = input;
        let _ = is_valid("token", &url, &params, &header);
        let candidates = candidate_urls(&url, &configured);
        assert_eq!(candidates[0], url);
        let _ = is_valid_for_any("token", &candidates, &params, &header);
        let sig = compute("token", &url, &params);
        assert!(is_valid("token", &url, &params, &sig));
        if !url.contains('#') {
            let with_fragment = format!("{url}#{header}");
            let sig = compute("token", &with_fragment, &params);
            let c = candidate_urls(&url, std::slice::from_ref(&with_fragment));
            assert!(is_valid_for_any("token", &c, &params, &sig));
        }
    }
);
