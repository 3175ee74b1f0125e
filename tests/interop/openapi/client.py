"""Generate a Python client from smsflow's OpenAPI document with openapi-python-client, then
call the API with it as a user would (tests/api_contract.rs runs this).

usage: client.py DOCUMENT WORKDIR BASE_URL TOKEN
Prints one JSON line: the caller's phones, and the error an unauthenticated call got.
"""

import json
import subprocess
import sys
from pathlib import Path

document, workdir, base_url, token = sys.argv[1:5]
work = Path(workdir)
config = work / "openapi-python-client.yaml"
# literal_enums: the time zone enum holds every tz database name, and `GMT+0`, `GMT-0` and `GMT0`
# would become one Python enum member name. post_hooks: no formatter is needed to import it.
config.write_text("literal_enums: true\npost_hooks: []\n")
package = work / "smsflow_client"
subprocess.run(
    [
        str(Path(sys.executable).with_name("openapi-python-client")),
        "generate",
        "--path", document,
        "--output-path", str(package),
        "--meta", "none",
        "--config", str(config),
        "--overwrite",
    ],
    check=True,
)
sys.path.insert(0, str(work))

from smsflow_client import AuthenticatedClient, Client  # noqa: E402
from smsflow_client.api.phones import list_phones  # noqa: E402
from smsflow_client.models import ErrorBody, PhoneList  # noqa: E402

with AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True) as c:
    phones = list_phones.sync(client=c)
if not isinstance(phones, PhoneList):
    sys.exit(f"listPhones answered {phones!r}, not a PhoneList")

with Client(base_url=base_url, raise_on_unexpected_status=True) as c:
    refused = list_phones.sync(client=c)
if not isinstance(refused, ErrorBody):
    sys.exit(f"listPhones without a token answered {refused!r}, not an ErrorBody")

print(json.dumps({"phones": phones.to_dict()["phones"], "unauthenticated": refused.to_dict()}))
