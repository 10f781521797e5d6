#!/usr/bin/env python3
"""Flights rows as Avro (fastavro) and Protobuf (protobuf, with protoc from
grpcio-tools) records, for tests/formats.rs.

    encode_formats.py FLIGHTS_NDJSON_GZ LIMIT OUT_DIR

writes into OUT_DIR:
  flights.avsc          the Avro schema (a record of the flights columns)
  avro.b64              one base64 record a line: schemaless (no container
                        header) binary Avro of each flights row
  flights.proto/.desc   the Protobuf schema and its compiled descriptor set
                        (protoc --descriptor_set_out --include_imports)
  protobuf.b64          one base64 record a line: each row as a Flight message
  avro-bad.jsonl        malformed Avro records and good ones between them:
  protobuf-bad.jsonl    {"name", "expect", "base64"}, expect as in
                        fixtures/bad-input (processed / unparseable)
  wiki-avro.b64         the events of Druid's own stream-ingestion
  wiki-protobuf.b64     integration test (WikipediaStreamEventStreamGenerator:
  wikipedia.desc        6 a second for 10 seconds from 1994-04-29T01:00:00Z),
                        serialized as its AvroEventSerializer and
                        ProtobufEventSerializer do, and the descriptor set of
                        that Protobuf message
  avro-registry.b64     the flights rows in Confluent's wire format (the
                        magic byte 0, the schema id as a big-endian int, the
                        Avro body as Confluent's KafkaAvroSerializer writes
                        it): even rows with schema id 1, odd ones with id 2
                        (the same fields in a record of another name)
  protobuf-registry.b64 the same for Protobuf (KafkaProtobufSerializer's:
                        the id, then the message indexes, then the message):
                        even rows id 3, index [0] (the single byte 0); odd
                        rows id 4, where Flight is the second message: [1]
  registry.json         schema id -> the registry's reply to
                        GET /schemas/ids/{id} ({"schema"}, and "schemaType"
                        PROTOBUF for the .proto text)

    encode_formats.py dump JSON_DUMP avro|protobuf OUT_DUMP

rewrites a dump of flights JSON records (make-dump's) as a dump of the same
records, shards and sequence numbers in Avro or Protobuf, and writes beside
it OUT_DUMP.task.json: the JSON bench task (fixtures/bench) reading that
format, for `bench`.
"""
import base64
import gzip
import io
import json
import os
import subprocess
import sys

import fastavro
import grpc_tools
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

LONGS = ["year", "month", "day", "sched_dep_time", "sched_arr_time", "distance", "hour", "minute"]
NULLABLE_LONGS = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
COLUMNS = [
    ("timestamp", "string"), ("year", "long"), ("month", "long"), ("day", "long"),
    ("dep_time", "long?"), ("sched_dep_time", "long"), ("dep_delay", "long?"),
    ("arr_time", "long?"), ("sched_arr_time", "long"), ("arr_delay", "long?"),
    ("carrier", "string"), ("flight", "string"), ("tailnum", "string?"),
    ("origin", "string"), ("dest", "string"), ("air_time", "long?"),
    ("distance", "long"), ("hour", "long"), ("minute", "long"), ("time_hour", "string"),
]

AVRO_SCHEMA = {
    "type": "record",
    "name": "Flight",
    "namespace": "flights",
    "fields": [
        {"name": name, "type": ["null", kind[:-1]] if kind.endswith("?") else kind}
        for name, kind in COLUMNS
    ],
}

# Every field `optional` (proto3 presence), so a 0 stays a 0 and a missing
# value stays missing; json_name keeps the snake_case names Druid would
# otherwise turn into lowerCamelCase.
PROTO = """syntax = "proto3";
package flights;
import "google/protobuf/timestamp.proto";

message Flight {
%s
}
"""


def proto_text():
    lines = []
    for number, (name, kind) in enumerate(COLUMNS, start=1):
        if name == "timestamp":
            t = "google.protobuf.Timestamp"
            lines.append(f'  {t} {name} = {number} [json_name = "{name}"];')
            continue
        t = "int64" if kind.startswith("long") else "string"
        lines.append(f'  optional {t} {name} = {number} [json_name = "{name}"];')
    return PROTO % "\n".join(lines)


def rows(path, limit):
    with gzip.open(path, "rt") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            yield json.loads(line)


def avro_record(schema, row):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, row)
    return buf.getvalue()


def compile_proto(out):
    with open(os.path.join(out, "flights.proto"), "w") as f:
        f.write(proto_text())
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{out}", f"-I{include}",
         "--include_imports", f"--descriptor_set_out={os.path.join(out, 'flights.desc')}",
         os.path.join(out, "flights.proto")],
        check=True,
    )
    with open(os.path.join(out, "flights.desc"), "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("flights.Flight"))


def proto_record(cls, row):
    msg = cls()
    for name, value in row.items():
        if value is None:
            continue
        if name == "timestamp":
            msg.timestamp.FromJsonString(value)
        else:
            setattr(msg, name, value)
    return msg.SerializeToString()


def confluent(schema_id, body, indexes=None):
    """A record in Confluent's wire format; `indexes` (Protobuf only) as
    its serializer writes them: a single 0 for [0], else the zigzag varint
    count and indexes."""
    import struct

    def zigzag(n):
        n = (n << 1) ^ (n >> 63)
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                return bytes(out)

    head = b"\x00" + struct.pack(">i", schema_id)
    if indexes is not None:
        if indexes == [0]:
            head += b"\x00"
        else:
            head += zigzag(len(indexes)) + b"".join(zigzag(i) for i in indexes)
    return head + body


def write_registry(out, avro, proto):
    second = dict(AVRO_SCHEMA, name="FlightAgain")
    text = proto_text()
    two_messages = text.replace("message Flight {", "message Other {\n  string other = 1;\n}\n\nmessage Flight {", 1)
    replies = {
        "1": {"schema": json.dumps(AVRO_SCHEMA)},
        "2": {"schema": json.dumps(second)},
        "3": {"schema": text, "schemaType": "PROTOBUF"},
        "4": {"schema": two_messages, "schemaType": "PROTOBUF"},
    }
    with open(os.path.join(out, "registry.json"), "w") as f:
        json.dump(replies, f)
    write_lines(os.path.join(out, "avro-registry.b64"),
                [confluent(1 + i % 2, r) for i, r in enumerate(avro)])
    write_lines(os.path.join(out, "protobuf-registry.b64"),
                [confluent(3, r, [0]) if i % 2 == 0 else confluent(4, r, [1])
                 for i, r in enumerate(proto)])


def b64(data):
    return base64.b64encode(data).decode()


def write_lines(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(b64(r) + "\n")


def entry(name, expect, data):
    return {"name": name, "expect": expect, "base64": b64(data)}


def avro_corpus(schema, good):
    """Malformed records made from real ones; their faults are what a
    broken producer writes."""
    g = good[0]
    # Where dep_time's union index sits: after timestamp, year, month, day.
    head = fastavro.parse_schema({
        "type": "record", "name": "Head", "fields": AVRO_SCHEMA["fields"][:4]})
    union_at = len(avro_record(head, {k: good_rows[0][k] for k in ["timestamp", "year", "month", "day"]}))
    assert g[union_at] == 2, "dep_time is set in the first row"
    other = fastavro.parse_schema({"type": "record", "name": "Other", "fields": [
        {"name": "id", "type": "long"}, {"name": "ok", "type": "boolean"}]})
    bad = [
        ("truncated to 1 byte", g[:1]),
        ("truncated to 10 bytes", g[:10]),
        ("truncated inside the union", g[:union_at + 1]),
        ("truncated by its last byte", g[:-1]),
        ("bad varint (11 continuation bytes)", g[:union_at] + b"\xff" * 11),
        ("unknown union branch 5", g[:union_at] + b"\x0a" + g[union_at + 1:]),
        ("negative union branch", g[:union_at] + b"\x01" + g[union_at + 1:]),
        ("negative string length", b"\x01" + g[1:]),
        ("string length past the end", b"\x7e" + g[1:]),
        ("huge string length", b"\xfe\xff\xff\xff\x0f" + g[1:]),
        ("written with another schema", avro_record(other, {"id": 5, "ok": True})),
        ("a JSON record", json.dumps(good_rows[0]).encode()),
        ("zero bytes of a long", g[:union_at] + b"\x02" + b"\x80" * 10),
    ]
    out = []
    for i, (name, data) in enumerate(bad):
        out.append(entry(f"good {i}", "processed", good[i + 1]))
        out.append(entry(name, "unparseable", data))
    return out


def protobuf_corpus(cls, good):
    g = good[0]
    no_time = cls(carrier="UA", origin="EWR", dest="IAH").SerializeToString()
    bad = [
        ("truncated inside the timestamp", g[:3]),
        ("truncated inside the last string", g[:-1]),
        ("bad varint (11 continuation bytes)", b"\x10" + b"\xff" * 11),
        ("field number 0", b"\x00\x01" + g),
        ("wire type 7", b"\x0f" + g),
        ("length past the end", b"\x5a\x7f" + b"UA"),
        ("end of a group never started", b"\x0c" + g),
        ("bad bytes inside the timestamp", b"\x0a\x02\xff\xff" + g[2 + g[1]:]),
        ("invalid UTF-8 in a string", b"\x5a\x02\xc3\x28" + g),
        ("no timestamp", no_time),
        ("a JSON record", json.dumps(good_rows[0]).encode()),
        ("huge length", b"\x5a\xff\xff\xff\xff\x0f" + g),
    ]
    out = []
    for i, (name, data) in enumerate(bad):
        out.append(entry(f"good {i}", "processed", good[i + 1]))
        out.append(entry(name, "unparseable", data))
    return out


# Druid's integration test (AbstractStreamIndexingTest): EVENTS_PER_SECOND 6,
# TOTAL_NUMBER_OF_SECOND 10, FIRST_EVENT_TIME 1994-04-29T01:00Z; event i of
# each second has added = delta = i, deleted = 0.
WIKI_STRINGS = [
    ("page", "Gypsy Danger"), ("language", "en"), ("user", "nuclear"),
    ("unpatrolled", "true"), ("newPage", "true"), ("robot", "false"),
    ("anonymous", "false"), ("namespace", "article"), ("continent", "North America"),
    ("country", "United States"), ("region", "Bay Area"), ("city", "San Francisco"),
]


def wiki_events():
    for second in range(10):
        for i in range(1, 7):
            event = {"timestamp": f"1994-04-29T01:00:{second:02d}Z"}
            event.update(WIKI_STRINGS)
            event.update({"added": i, "deleted": 0, "delta": i})
            yield event


# AvroEventSerializer's writer schema: required strings, ints for the
# numbers (the test's parser reads them with a schema of longs: the same
# bytes).
WIKI_AVRO = {
    "type": "record", "name": "wikipedia", "namespace": "org.apache.druid",
    "fields": [{"name": "timestamp", "type": "string"}]
    + [{"name": name, "type": "string"} for name, _ in WIKI_STRINGS]
    + [{"name": name, "type": "int"} for name in ["added", "deleted", "delta"]],
}

# ProtobufEventSerializer's message: proto2 optional fields 1-16.
WIKI_PROTO = 'syntax = "proto2";\nmessage Wikipedia {\n%s\n}\n' % "\n".join(
    [f"  optional string {name} = {n};" for n, name in
     enumerate(["timestamp"] + [name for name, _ in WIKI_STRINGS], start=1)]
    + [f"  optional int32 {name} = {n};" for n, name in
       enumerate(["added", "deleted", "delta"], start=14)])


def write_wikipedia(out):
    schema = fastavro.parse_schema(WIKI_AVRO)
    events = list(wiki_events())
    write_lines(os.path.join(out, "wiki-avro.b64"), [avro_record(schema, e) for e in events])
    with open(os.path.join(out, "wikipedia.proto"), "w") as f:
        f.write(WIKI_PROTO)
    desc = os.path.join(out, "wikipedia.desc")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{out}", f"--descriptor_set_out={desc}",
         os.path.join(out, "wikipedia.proto")],
        check=True,
    )
    with open(desc, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("Wikipedia"))
    write_lines(os.path.join(out, "wiki-protobuf.b64"),
                [cls(**e).SerializeToString() for e in events])


def convert_dump(source, kind, out):
    os.makedirs(out, exist_ok=True)
    if kind == "avro":
        schema = fastavro.parse_schema(AVRO_SCHEMA)
        encode = lambda row: avro_record(schema, row)  # noqa: E731
        input_format = {"type": "avro_stream",
                        "avroBytesDecoder": {"type": "schema_inline", "schema": AVRO_SCHEMA}}
    else:
        cls = compile_proto(out)
        encode = lambda row: proto_record(cls, row)  # noqa: E731
        input_format = {"type": "protobuf", "protoBytesDecoder": {
            "type": "file", "descriptor": "file://" + os.path.abspath(os.path.join(out, "flights.desc")),
            "protoMessageType": "flights.Flight"}}
    for name in sorted(os.listdir(source)):
        if name == "shards.json":
            with open(os.path.join(source, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
                g.write(f.read())
            continue
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(source, name)) as f, open(os.path.join(out, name), "w") as g:
            for line in f:
                record = json.loads(line)
                row = json.loads(base64.b64decode(record["Data"]))
                record["Data"] = b64(encode(row))
                g.write(json.dumps(record, separators=(",", ":")) + "\n")
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "fixtures", "bench", "flights4-json-task.json")) as f:
        task = json.load(f)
    task["id"] = f"index_kinesis_flights_bench_{kind}"
    task["ioConfig"]["inputFormat"] = input_format
    with open(out.rstrip("/") + ".task.json", "w") as f:
        json.dump(task, f, indent=2)


if __name__ == "__main__" and sys.argv[1] == "dump":
    convert_dump(sys.argv[2], sys.argv[3], sys.argv[4])
elif __name__ == "__main__":
    source, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    good_rows = list(rows(source, limit))
    schema = fastavro.parse_schema(AVRO_SCHEMA)
    with open(os.path.join(out, "flights.avsc"), "w") as f:
        json.dump(AVRO_SCHEMA, f)
    avro = [avro_record(schema, r) for r in good_rows]
    write_lines(os.path.join(out, "avro.b64"), avro)
    cls = compile_proto(out)
    proto = [proto_record(cls, r) for r in good_rows]
    write_lines(os.path.join(out, "protobuf.b64"), proto)
    for name, corpus in [("avro-bad.jsonl", avro_corpus(schema, avro)),
                         ("protobuf-bad.jsonl", protobuf_corpus(cls, proto))]:
        with open(os.path.join(out, name), "w") as f:
            for e in corpus:
                f.write(json.dumps(e) + "\n")
    write_wikipedia(out)
    write_registry(out, avro, proto)
