#!/usr/bin/env python3
"""Re-pack a shard dump's records as KPL-aggregated records, with the
aws-kinesis-agg library (the KPL's own aggregation format, not ours).

usage: kpl_aggregate.py IN_DUMP OUT_DUMP [--per-record N] [--corrupt-md5 SHARD:INDEX]

Every N consecutive records of a shard become one aggregated record that
takes the sequence number of the last of them; shards.json is copied.
--corrupt-md5 flips a bit of the digest of the INDEX-th output record of
SHARD (0-based), for bad-input tests.
"""
import argparse
import base64
import json
import os
import shutil

from aws_kinesis_agg.aggregator import RecordAggregator


def main():
    p = argparse.ArgumentParser()
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--per-record", type=int, default=10)
    p.add_argument("--corrupt-md5", default=None)
    a = p.parse_args()
    corrupt = None
    if a.corrupt_md5:
        shard, index = a.corrupt_md5.rsplit(":", 1)
        corrupt = (shard, int(index))
    os.makedirs(a.dst, exist_ok=True)
    shutil.copy(os.path.join(a.src, "shards.json"), os.path.join(a.dst, "shards.json"))
    for shard in json.load(open(os.path.join(a.src, "shards.json")))["Shards"]:
        sid = shard["ShardId"]
        lines = [json.loads(l) for l in open(os.path.join(a.src, sid + ".jsonl"))]
        out = open(os.path.join(a.dst, sid + ".jsonl"), "w")
        for n, start in enumerate(range(0, len(lines), a.per_record)):
            group = lines[start:start + a.per_record]
            agg = RecordAggregator()
            for rec in group:
                full = agg.add_user_record(rec["PartitionKey"], base64.b64decode(rec["Data"]))
                assert full is None, "a group larger than one aggregated record"
            pk, _, data = agg.clear_and_get().get_contents()
            if corrupt == (sid, n):
                data = data[:-1] + bytes([data[-1] ^ 1])
            last = group[-1]
            out.write(json.dumps({
                "SequenceNumber": last["SequenceNumber"],
                "ApproximateArrivalTimestamp": last["ApproximateArrivalTimestamp"],
                "Data": base64.b64encode(data).decode(),
                "PartitionKey": pk,
            }) + "\n")
        out.close()


if __name__ == "__main__":
    main()
