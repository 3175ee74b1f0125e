"""Webhooks against the equal-work Benthos peer, signed by Twilio's own helper library.

Signs with twilio.request_validator.RequestValidator (the code Twilio publishes for checking its
signatures), posts to a running equal-work ingest peer and checks each answer: a correctly
signed webhook is accepted (200, TwiML), a forged one is refused (403), a repeated MessageSid
is answered 200 and not appended again, a form without To is a 400, JSON is a 415, and a
sender over its budget (the peer started with a small PEER_SENDER_* budget) is answered 200 and
recorded as SenderRejected. Prints a JSON report (the MessageSids it used, what it expects in
Kafka) and exits non-zero on the first wrong answer.
"""

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from twilio.request_validator import RequestValidator


class Params:
    """Form parameters with repeated keys, as RequestValidator reads them (getlist)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __iter__(self):
        return iter(k for k, _ in self.pairs)

    def getlist(self, key):
        return [v for k, v in self.pairs if k == key]


def post(url, body, headers):
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the webhook URL, as Twilio signs it")
    ap.add_argument("--token", required=True)
    ap.add_argument("--seed", required=True)
    ap.add_argument("--burst", type=int, required=True, help="the peer's PEER_SENDER_BURST")
    args = ap.parse_args()
    signer = RequestValidator(args.token)
    forger = RequestValidator(args.token + "-wrong")
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    failures, sent = [], {"accepted": [], "limited": []}

    def check(what, status, body, want_status, want_in_body=None):
        ok = status == want_status and (want_in_body is None or want_in_body in body)
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {status} {body[:80]!r}", file=sys.stderr)
        if not ok:
            failures.append({"check": what, "status": status, "body": body[:200], "want": want_status})

    def send(pairs, validator=signer, headers=None):
        sig = validator.compute_signature(args.url, Params(pairs))
        body = urllib.parse.urlencode(pairs)
        return post(args.url, body, {**form_type, "X-Twilio-Signature": sig, **(headers or {})})

    def message(sid, sender="+15105550100", extra=()):
        return [("MessageSid", sid), ("SmsSid", sid), ("AccountSid", "AC" + "0" * 32), ("From", sender),
                ("To", "+14155550100"), ("Body", "met Dana + Sam, 50% off & more: café ☕"), ("NumSegments", "1"),
                ("NumMedia", "0"), ("SmsStatus", "received"), ("ApiVersion", "2010-04-01"), *extra]

    # Every optional part: geo, a Messaging Service, two attachments, a repeated unknown key.
    full_sid = f"MM{args.seed}full"
    full = [p for p in message(full_sid) if p[0] != "NumMedia"] + [
        ("NumMedia", "2"), ("MediaUrl0", "https://api.twilio.com/m/0"), ("MediaContentType0", "image/jpeg"),
        ("MediaUrl1", "https://api.twilio.com/m/1"), ("MediaContentType1", "text/vcard"),
        ("MessagingServiceSid", "MG" + "1" * 32), ("FromCity", "OAKLAND"), ("FromState", "CA"),
        ("FromCountry", "US"), ("ToZip", "94105"), ("Extra", "b"), ("Extra", "a")]
    status, body = send(full)
    check("signed by Twilio's RequestValidator", status, body, 200, "<Response/>")
    sent["accepted"].append(full_sid)
    status, body = send(full)
    check("the same MessageSid again (duplicate)", status, body, 200, "<Response/>")

    forged_sid = f"SM{args.seed}forged"
    status, body = send(message(forged_sid), validator=forger)
    check("signed with another auth token", status, body, 403)
    sig = signer.compute_signature(args.url, Params(message(forged_sid)))
    tampered = urllib.parse.urlencode(message(forged_sid, sender="+15105550199"))
    status, body = post(args.url, tampered, {**form_type, "X-Twilio-Signature": sig})
    check("signature of another form (From changed)", status, body, 403)
    status, body = post(args.url, urllib.parse.urlencode(message(forged_sid)), form_type)
    check("no signature", status, body, 403)
    status, body = send([p for p in message(f"SM{args.seed}noto") if p[0] != "To"])
    check("signed, To missing", status, body, 400)
    status, body = post(args.url, "{}", {"Content-Type": "application/json", "X-Twilio-Signature": "x"})
    check("JSON body", status, body, 415)

    # One sender, burst + 2 messages at once: the budget allows `burst`, the rest are recorded
    # as SenderRejected and still answered 200 (Twilio must not retry them).
    for i in range(args.burst + 2):
        sid = f"SM{args.seed}rate{i}"
        status, body = send(message(sid, sender="+15105550142"))
        check(f"sender budget, message {i + 1} of {args.burst + 2}", status, body, 200, "<Response/>")
        (sent["accepted"] if i < args.burst else sent["limited"]).append(sid)

    json.dump({"failures": failures, "sent": sent,
               "expect": {"MessageReceived": len(sent["accepted"]), "SenderRejected": len(sent["limited"])}},
              sys.stdout, indent=1)
    print()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
