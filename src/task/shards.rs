//! The runner's dealings with the stream's shards: the control connection
//! for lookups, Druid's start-availability check, the children of drained
//! shards, and what each shard of a sequence reads.

use super::*;
use crate::source::kinesis::ControlConnection;

impl Runner<'_> {
    /// The connection the poll thread uses for lookups (ListShards, the
    /// earliest record), made on first use.
    pub(super) fn control_connection<'c>(
        &self,
        conn: &'c mut Option<ControlConnection>,
    ) -> Result<&'c ControlConnection> {
        if conn.is_none() {
            *conn = Some(crate::source::kinesis::connect_control(
                &self.kinesis_config(),
            )?);
        }
        Ok(conn.as_ref().expect("connected above"))
    }

    /// Druid's start-sequence availability check (peon-protocol §5.3): a
    /// numbered start before the shard's earliest record (trimmed past
    /// retention), or a shard whose earliest record is unknown, fails the
    /// task naming both, unless resetOffsetAutomatically: then, with no
    /// supervisor to reset the offsets, reading restarts at the earliest
    /// record and the gap is logged.
    pub(super) fn check_start_available(
        &self,
        dump: Option<&Dump>,
        list_conn: &mut Option<ControlConnection>,
        a: &mut ShardAssignment,
    ) -> Result<()> {
        if !a.start.is_number() {
            return Ok(());
        }
        let earliest = match dump {
            Some(d) => match d.shard(&a.shard_id) {
                Some(info) => Some(
                    SequenceNumber::parse(&info.sequence_number_range.starting_sequence_number)
                        .map_err(|e| anyhow!("dump shard {}: {e}", info.shard_id))?,
                ),
                // A shard missing from the dump is reported when reading starts.
                None => return Ok(()),
            },
            None => {
                let conn = self.control_connection(list_conn)?;
                crate::source::kinesis::earliest_sequence_number(
                    conn,
                    &self.task.resolved.stream,
                    &a.shard_id,
                )?
            }
        };
        let earliest_text = earliest
            .as_ref()
            .map_or("unknown (no records)".to_string(), |e| e.to_string());
        if earliest.as_ref().is_some_and(|e| &a.start >= e) {
            return Ok(());
        }
        if self.task.tuning_config.reset_offset_automatically {
            log::warn!(
                "shard {}: starting sequence number {} is no longer available (earliest is {earliest_text}); resetOffsetAutomatically: reading from the earliest record, the records in between are lost",
                a.shard_id,
                a.start
            );
            a.start = SequenceNumber::UnreadTrimHorizon;
            a.exclusive = false;
            return Ok(());
        }
        bail!(
            "shard {}: starting sequence number {} is no longer available (earliest is {earliest_text}; trimmed past retention?); set resetOffsetAutomatically to restart from the earliest record, or skipSequenceNumberAvailabilityCheck to read from wherever Kinesis starts",
            a.shard_id,
            a.start
        )
    }

    /// Start reading the children of resharding whose parents are now all
    /// drained (from the dump's shard list, or ListShards when live).
    pub(super) fn start_ready_children(
        &self,
        dump: Option<&Dump>,
        list_conn: &mut Option<ControlConnection>,
        shards: &mut Vec<ShardState>,
        supplier: &mut crate::source::buffer::ShardBuffers,
    ) -> Result<()> {
        let links = match dump {
            Some(d) => d.links(),
            None => {
                let conn = self.control_connection(list_conn)?;
                crate::source::dump::links(&crate::source::kinesis::list_shards(
                    conn,
                    &self.task.resolved.stream,
                )?)
            }
        };
        let drained: std::collections::BTreeMap<String, bool> = shards
            .iter()
            .map(|s| (s.assignment.shard_id.clone(), s.reached_end_of_shard))
            .collect();
        for (child, parents) in crate::source::ready_children(&links, &drained) {
            log::info!(
                "shard {child}: child of {}, read from TRIM_HORIZON now that its parents are drained",
                parents.join(" and ")
            );
            let assignment = ShardAssignment {
                shard_id: child,
                start: SequenceNumber::UnreadTrimHorizon,
                exclusive: false,
                end: SequenceNumber::NoEnd,
            };
            let position = supplier.add_shard(assignment.clone())?;
            debug_assert_eq!(position, shards.len());
            shards.push(ShardState::new(assignment, parents));
        }
        Ok(())
    }
}

/// What each shard of a sequence reads: from its start (inclusive unless
/// listed exclusive) to its end, or until told to stop.
pub(crate) fn shard_assignments(span: &SequenceSpan) -> Vec<ShardAssignment> {
    span.start
        .iter()
        .map(|(shard, start)| ShardAssignment {
            shard_id: shard.clone(),
            start: start.clone(),
            exclusive: span.exclusive.contains(shard),
            end: span
                .end
                .get(shard)
                .cloned()
                .unwrap_or(SequenceNumber::NoEnd),
        })
        .collect()
}
