//! The signature check (`ingress::signature`): never panics on arbitrary URLs, parameters and
//! headers; what `compute` signs verifies in any parameter order and with the configured
//! overrides fragment; any change to a parameter or the URL fails.

use proptest::prelude::*;
use smsflow::ingress::signature::{candidate_urls, compute, is_valid, is_valid_for_any};

const TOKEN: &str = "prop-token";

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::sample::select(vec!["https", "http"]),
            "[a-z]{1,8}(\\.[a-z]{2,5}){1,2}",
            prop::option::of(prop::sample::select(vec![":443", ":80", ":8443", ":1"])),
            "(/[a-zA-Z0-9_.~%-]{0,8}){0,3}",
            prop::option::of("[a-z]{1,4}=[a-zA-Z0-9%+]{0,6}(&[a-z]{1,4}=[a-z0-9]{0,4}){0,2}"),
        )
            .prop_map(|(scheme, host, port, path, query)| {
                let mut u = format!("{scheme}://{host}{}{path}", port.unwrap_or(""));
                if let Some(q) = query {
                    u.push('?');
                    u.push_str(&q);
                }
                u
            }),
        any::<String>(),
    ]
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((any::<String>(), any::<String>()), 0..12)
}

proptest! {
    #![proptest_config(crate::cases(512))]

    #[test]
    fn arbitrary_input_never_panics(u in url(), p in params(), sig in any::<String>(), conf in prop::collection::vec(url(), 0..3)) {
        let _ = is_valid(TOKEN, &u, &p, &sig);
        let c = candidate_urls(&u, &conf);
        prop_assert_eq!(&c[0], &u, "the received URL is always tried first");
        let _ = is_valid_for_any(TOKEN, &c, &p, &sig);
    }

    #[test]
    fn a_signed_request_verifies_in_any_order_and_a_change_breaks_it(
        u in url(),
        p in params(),
        seed in any::<u64>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let sig = compute(TOKEN, &u, &p);
        prop_assert!(is_valid(TOKEN, &u, &p, &sig));
        let mut shuffled = p.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
        prop_assert!(is_valid(TOKEN, &u, &shuffled, &sig));
        prop_assert!(!is_valid("other-token", &u, &p, &sig));
        if !p.is_empty() {
            let mut changed = p.clone();
            let i = flip.index(changed.len());
            changed[i].1.push('\u{1}');
            // Unless the same pair also appears unchanged (repeated values are deduplicated).
            if !p.contains(&changed[i]) {
                prop_assert!(!is_valid(TOKEN, &u, &changed, &sig));
            }
        }
        let other_url = format!("{u}x");
        prop_assert!(!is_valid(TOKEN, &other_url, &p, &sig));
    }

    #[test]
    fn a_url_signed_with_its_overrides_fragment_verifies_through_the_candidates(
        u in url(),
        p in params(),
        frag in "[a-z]{1,3}=[0-9a-z,]{1,8}(&[a-z]{1,3}=[0-9a-z,]{1,8}){0,4}",
    ) {
        prop_assume!(!u.contains('#'));
        let configured = format!("{u}#{frag}");
        let sig = compute(TOKEN, &configured, &p);
        let candidates = candidate_urls(&u, std::slice::from_ref(&configured));
        prop_assert!(is_valid_for_any(TOKEN, &candidates, &p, &sig));
    }
}
