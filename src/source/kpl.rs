//! KPL deaggregation (`ioConfig.deaggregate`): a Kinesis record written by
//! the Kinesis Producer Library may pack many user records as
//! `magic (F3 89 9A C2) | AggregatedRecord protobuf | MD5 of the protobuf`.
//! Druid unpacks them with the KCL's `UserRecord.deaggregate`; every user
//! record shares its Kinesis record's sequence number. A record without
//! the magic passes through whole. Where the KCL would hand a record with
//! a bad digest or protobuf on as if it were plain data (to fail in the
//! parser), this reports why, so the error names the real cause.

use md5::{Digest, Md5};
use prost::Message;

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_BYTES: usize = 16;

/// The KPL's `messages.proto`, as prost messages.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<UserRecord>,
}

#[derive(Clone, PartialEq, Message)]
pub struct UserRecord {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// The user records of a Kinesis record: None when it is not aggregated
/// (it is its own single record); an error for a damaged aggregate.
pub fn deaggregate(data: &[u8]) -> Result<Option<Vec<Vec<u8>>>, String> {
    let Some(rest) = data.strip_prefix(&MAGIC) else {
        return Ok(None);
    };
    if rest.len() < DIGEST_BYTES {
        return Err("KPL aggregated record shorter than its MD5 digest".into());
    }
    let (message, digest) = rest.split_at(rest.len() - DIGEST_BYTES);
    if Md5::digest(message).as_slice() != digest {
        return Err("KPL aggregated record: MD5 digest does not match".into());
    }
    let aggregated = AggregatedRecord::decode(message)
        .map_err(|e| format!("KPL aggregated record: bad protobuf: {e}"))?;
    let keys = aggregated.partition_key_table.len() as u64;
    let mut out = Vec::with_capacity(aggregated.records.len());
    for (i, r) in aggregated.records.into_iter().enumerate() {
        if r.partition_key_index >= keys {
            return Err(format!(
                "KPL aggregated record: user record {i} names partition key {} of {keys}",
                r.partition_key_index
            ));
        }
        out.push(r.data);
    }
    Ok(Some(out))
}

/// Pack user records as the KPL does (for tests and `make-dump`'s
/// aggregated dumps): one partition key each, in order.
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut message = AggregatedRecord::default();
    for (key, data) in records {
        let index = match message.partition_key_table.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                message.partition_key_table.push(key.to_string());
                message.partition_key_table.len() - 1
            }
        };
        message.records.push(UserRecord {
            partition_key_index: index as u64,
            explicit_hash_key_index: None,
            data: data.to_vec(),
            tags: Vec::new(),
        });
    }
    let body = message.encode_to_vec();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_records_pass_through() {
        assert_eq!(deaggregate(b"{\"a\":1}").unwrap(), None);
        assert_eq!(deaggregate(b"").unwrap(), None);
        assert_eq!(deaggregate(&MAGIC[..3]).unwrap(), None);
    }

    #[test]
    fn aggregates_unpack_in_order() {
        let packed = aggregate(&[("k1", b"one"), ("k2", b""), ("k1", b"three")]);
        assert_eq!(
            deaggregate(&packed).unwrap(),
            Some(vec![b"one".to_vec(), Vec::new(), b"three".to_vec()])
        );
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let packed = aggregate(&[("k", b"payload")]);
        let mut bad_digest = packed.clone();
        *bad_digest.last_mut().unwrap() ^= 1;
        assert!(deaggregate(&bad_digest).unwrap_err().contains("MD5"));
        // A body that is not protobuf, with a correct digest.
        let body = [0xFFu8; 7];
        let mut bad_proto = MAGIC.to_vec();
        bad_proto.extend_from_slice(&body);
        bad_proto.extend_from_slice(&Md5::digest(body));
        assert!(deaggregate(&bad_proto).unwrap_err().contains("protobuf"));
        assert!(deaggregate(&[MAGIC.as_slice(), &[1, 2]].concat()).is_err());
        // Every truncation fails or (never) panics.
        for n in 0..packed.len() {
            let _ = deaggregate(&packed[..n]);
        }
    }
}
