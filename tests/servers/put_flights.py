#!/usr/bin/env python3
"""Put flights NDJSON rows into a Kinesis stream with boto3, the way a
producer would: PutRecords of up to 500 records, partition key = `flight`.

usage: put_flights.py ENDPOINT STREAM SHARDS ROWS NDJSON_GZ [--kpl N] [--corrupt-md5 K]
                     [--skip N] [--hash-key K]

Creates the stream with SHARDS shards (SHARDS 0: the stream exists),
waits until it is ACTIVE, puts ROWS rows after the first --skip ones, and prints one JSON object: {shard id: last sequence
number put there}. With --hash-key K every record goes with ExplicitHashKey
K (all into the shard whose range holds K). With --kpl N the rows go as KPL-aggregated records of N
rows each (aws-kinesis-agg; an aggregate is keyed by its first row's
flight); with --corrupt-md5 K a bit of the K-th aggregate's MD5 is flipped,
and "corrupted": [shard id, sequence number] names where it landed."""
import gzip
import json
import sys

import boto3
from aws_kinesis_agg.aggregator import RecordAggregator


def main():
    endpoint, stream, shards, rows, path = sys.argv[1:6]
    shards, rows = int(shards), int(rows)
    opts = dict(zip(sys.argv[6::2], sys.argv[7::2]))
    kpl = int(opts.get("--kpl", 0))
    corrupt = int(opts["--corrupt-md5"]) if "--corrupt-md5" in opts else None
    skip = int(opts.get("--skip", 0))
    hash_key = opts.get("--hash-key")
    client = boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )
    if shards:
        client.create_stream(StreamName=stream, ShardCount=shards)
    client.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    last, result = {}, {}
    batch = []  # (data, partition key, damaged?)

    def send():
        records = [{"Data": d, "PartitionKey": k} for d, k, _ in batch]
        if hash_key is not None:
            for r in records:
                r["ExplicitHashKey"] = hash_key
        out = client.put_records(StreamName=stream, Records=records)
        assert out.get("FailedRecordCount", 0) == 0, out
        for (_, _, damaged), r in zip(batch, out["Records"]):
            if damaged:
                result["corrupted"] = [r["ShardId"], r["SequenceNumber"]]
            prev = last.get(r["ShardId"])
            if prev is None or int(r["SequenceNumber"]) > int(prev):
                last[r["ShardId"]] = r["SequenceNumber"]
        batch.clear()

    def put(data, key, damaged=False):
        batch.append((data, key, damaged))
        if len(batch) == 500:
            send()

    agg, aggregates, first_key = RecordAggregator(), 0, None

    def flush_aggregate():
        nonlocal agg, aggregates, first_key
        if agg.get_num_user_records() == 0:
            return
        _, _, data = agg.clear_and_get().get_contents()
        damaged = aggregates == corrupt
        if damaged:
            data = data[:-1] + bytes([data[-1] ^ 1])
        put(data, first_key, damaged)
        aggregates += 1
        agg, first_key = RecordAggregator(), None

    with gzip.open(path, "rt") as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            if i >= skip + rows:
                break
            row = json.loads(line)
            data = line.rstrip("\n").encode()
            if not kpl:
                put(data, row["flight"])
                continue
            first_key = first_key or row["flight"]
            assert agg.add_user_record(row["flight"], data) is None
            if agg.get_num_user_records() == kpl:
                flush_aggregate()
    flush_aggregate()
    if batch:
        send()
    result.update(last)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
