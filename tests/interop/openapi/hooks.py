"""schemathesis hooks for smsflow's OpenAPI document (loaded by tests/api_contract.rs through
SCHEMATHESIS_HOOKS).

The document declares two string formats of its own. A format says more than its pattern: an
E.164 number must also be a real number of its country, and a page token must be one the server
issued. Without a strategy, schemathesis would generate strings that only match the pattern, and
its positive checks would call the server's refusal of them a bug. With these, positive cases
are values the server must accept; negative cases still break the pattern.
"""

import os

import schemathesis
from hypothesis import strategies as st

# Numbers that libphonenumber holds valid and that reach nobody: the North American 555-01XX
# range set aside for fiction, and Ofcom's drama range 020 7946 0000-0999 in London.
E164 = st.one_of(
    st.integers(100, 199).map(lambda n: f"+1510555{n:04d}"),
    st.integers(0, 999).map(lambda n: f"+44207946{n:04d}"),
)

# Page tokens are opaque: only ones the server issued are valid, so the test passes the tokens
# it read from the seeded lists (comma-separated) rather than building them here.
_tokens = [t for t in os.environ.get("SMSFLOW_PAGE_TOKENS", "").split(",") if t]
if not _tokens:
    raise RuntimeError("SMSFLOW_PAGE_TOKENS must name at least one page token the server issued")

schemathesis.openapi.format("e164", E164)
schemathesis.openapi.format("page-token", st.sampled_from(_tokens))
