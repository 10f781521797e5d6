#!/usr/bin/env python3
"""Put flights NDJSON rows into a Kinesis stream with boto3, the way a
producer would: PutRecords of up to 500 rows, partition key = `flight`.

usage: put_flights.py ENDPOINT STREAM SHARDS ROWS NDJSON_GZ
Creates the stream with SHARDS shards, waits until it is ACTIVE, puts the
first ROWS rows, and prints one JSON object: {shard id: last sequence
number} of what was put."""
import gzip
import json
import sys

import boto3


def main():
    endpoint, stream, shards, rows, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    client = boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )
    client.create_stream(StreamName=stream, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    last = {}
    batch = []

    def flush():
        out = client.put_records(StreamName=stream, Records=batch)
        assert out.get("FailedRecordCount", 0) == 0, out
        for r in out["Records"]:
            prev = last.get(r["ShardId"])
            if prev is None or int(r["SequenceNumber"]) > int(prev):
                last[r["ShardId"]] = r["SequenceNumber"]
        batch.clear()

    with gzip.open(path, "rt") as f:
        for i, line in enumerate(f):
            if i >= rows:
                break
            row = json.loads(line)
            batch.append({"Data": line.rstrip("\n").encode(), "PartitionKey": row["flight"]})
            if len(batch) == 500:
                flush()
    if batch:
        flush()
    print(json.dumps(last))


if __name__ == "__main__":
    main()
