"""A downstream consumer as an analytics team would write it, with no smsflow code.

Reads every committed record of the given topics (from the beginning to the end offsets taken
at start) and decodes it:

  single-object  with fastavro and the .avsc files of --schemas only: the header's
                 CRC-64-AVRO fingerprint picks the writer schema.
  confluent      with confluent-kafka's AvroDeserializer pointed at the schema registry.

Each record's decoded type must equal its `event-type` header. Prints a JSON report and exits
non-zero when any record fails. Used by tests/downstream_consumers.rs.
"""

import argparse
import io
import json
import pathlib
import sys
import time

import fastavro
from confluent_kafka import Consumer, TopicPartition
from fastavro.schema import fingerprint, to_parsing_canonical_form


def single_object_decoder(schema_dir):
    """fingerprint (8 bytes, as in the header) -> (full name, parsed schema)."""
    by_fp = {}
    for path in sorted(pathlib.Path(schema_dir).glob("*.avsc")):
        parsed = fastavro.parse_schema(json.loads(path.read_text()))
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        by_fp[fp] = (parsed["name"], parsed)

    def decode(value, _topic):
        if value[:2] != b"\xc3\x01":
            raise ValueError(f"not single-object encoding: header {value[:2].hex()}")
        fp = value[2:10]
        if fp not in by_fp:
            raise ValueError(f"fingerprint {fp.hex()} matches no file in {schema_dir}")
        name, schema = by_fp[fp]
        record = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
        return name, record

    return decode


def confluent_decoder(registry_url):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    # The client's default is no timeout at all (httpx timeout=None): one stalled registry
    # request would hang the whole read. Bound each request; the client retries on its own.
    client = SchemaRegistryClient({"url": registry_url, "timeout": 10})
    # return_record_name: a multi-type topic's subject is a union; name the branch read.
    deserializer = AvroDeserializer(client, return_record_name=True)

    def decode(value, topic):
        if value[:1] != b"\x00":
            raise ValueError(f"not Confluent wire format: first byte {value[:1].hex()}")
        out = deserializer(value, SerializationContext(topic, MessageField.VALUE))
        if isinstance(out, tuple):
            return out[0], out[1]
        # A single-type topic: the subject is the record itself.
        return None, out

    return decode


def end_offsets(consumer, topic):
    md = consumer.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error is not None:
        raise SystemExit(f"topic {topic} not found")
    ends = {}
    for p in md.topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends[p] = high
    return ends


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topics", required=True, help="comma separated")
    ap.add_argument("--mode", choices=["single-object", "confluent"], required=True)
    ap.add_argument("--schemas", help="folder of .avsc files (single-object)")
    ap.add_argument("--registry", help="schema registry URL (confluent)")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    decode = (
        single_object_decoder(args.schemas)
        if args.mode == "single-object"
        else confluent_decoder(args.registry)
    )
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": "interop-check",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    report = {"mode": args.mode, "topics": {}, "failures": []}

    for topic in args.topics.split(","):
        ends = end_offsets(consumer, topic)
        stats = {"records": 0, "decoded": 0, "types": {}}
        report["topics"][topic] = stats
        if not ends:
            continue
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + args.timeout
        remaining = dict(ends)
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                # Transaction markers are offsets too: check positions, not record counts.
                for tp in consumer.position([TopicPartition(topic, p) for p in list(remaining)]):
                    if tp.offset >= remaining.get(tp.partition, 0):
                        remaining.pop(tp.partition, None)
                continue
            if msg.error():
                raise SystemExit(f"consumer error: {msg.error()}")
            if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                remaining.pop(msg.partition(), None)
            stats["records"] += 1
            headers = dict(msg.headers() or [])
            event_type = (headers.get("event-type") or b"").decode()
            try:
                name, record = decode(msg.value(), topic)
                if not isinstance(record, dict):
                    raise ValueError(f"decoded to {type(record).__name__}, not a record")
                if name is not None and name.rsplit(".", 1)[-1] != event_type:
                    raise ValueError(f"decoded {name} but the event-type header says {event_type}")
                stats["decoded"] += 1
                short = (name or event_type).rsplit(".", 1)[-1]
                stats["types"][short] = stats["types"].get(short, 0) + 1
            except Exception as e:  # noqa: BLE001 - every failure is reported, none hidden
                report["failures"].append(
                    {"topic": topic, "partition": msg.partition(), "offset": msg.offset(),
                     "event_type": event_type, "error": f"{type(e).__name__}: {e}"}
                )
        if remaining:
            report["failures"].append(
                {"topic": topic, "error": f"end offsets not reached in {args.timeout}s: {remaining}"}
            )
        consumer.unassign()
    consumer.close()
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
