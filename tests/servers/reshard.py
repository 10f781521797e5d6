#!/usr/bin/env python3
"""Reshard a Kinesis stream with boto3, as an operator would.

usage: reshard.py ENDPOINT STREAM split SHARD
       reshard.py ENDPOINT STREAM merge SHARD ADJACENT_SHARD

A split cuts SHARD's hash range in the middle. Waits until the stream is
ACTIVE again, then prints the stream's shards as JSON: {shard id: [parent,
adjacent parent, closed?]}."""
import json
import sys

import boto3


def main():
    endpoint, stream, op = sys.argv[1:4]
    client = boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )
    shards = {s["ShardId"]: s for s in client.list_shards(StreamName=stream)["Shards"]}
    if op == "split":
        shard = sys.argv[4]
        r = shards[shard]["HashKeyRange"]
        middle = (int(r["StartingHashKey"]) + int(r["EndingHashKey"]) + 1) // 2
        client.split_shard(StreamName=stream, ShardToSplit=shard,
                           NewStartingHashKey=str(middle))
    elif op == "merge":
        client.merge_shards(StreamName=stream, ShardToMerge=sys.argv[4],
                            AdjacentShardToMerge=sys.argv[5])
    else:
        sys.exit(f"unknown operation {op!r}")
    client.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    out = {}
    for s in client.list_shards(StreamName=stream)["Shards"]:
        closed = "EndingSequenceNumber" in s["SequenceNumberRange"]
        out[s["ShardId"]] = [s.get("ParentShardId"), s.get("AdjacentParentShardId"), closed]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
