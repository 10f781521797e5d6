//! The row path of a task, shared by `run`, `bench` and `sample`: a
//! record's entities, the parser, the row stage (timestamp, transforms,
//! filter, message-time window) and the incremental index.

use super::*;

/// A record's entities when they are not its data as is: the user
/// records of a KPL aggregate (with `deaggregate`), with JSON comments
/// blanked out where the featureSpec allows them. None: the data as is.
pub(crate) fn entities_of(
    data: &[u8],
    deaggregate: bool,
    comments: Option<json_comments::CommentSettings>,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    let users = if deaggregate {
        kpl::deaggregate(data)?
    } else {
        None
    };
    let Some(settings) = comments else {
        return Ok(users);
    };
    match users {
        Some(mut users) => {
            for user in &mut users {
                if let Some(stripped) = crate::input::strip_json_comments(user, settings)? {
                    *user = stripped;
                }
            }
            Ok(Some(users))
        }
        None => Ok(crate::input::strip_json_comments(data, settings)?.map(|d| vec![d])),
    }
}

/// The row path of a task: parser, index and timestamp parser, with every
/// declared dimension and metric input given its slot.
pub struct Pipeline {
    pub parser: RowParser,
    pub index: IncrementalIndex,
    pub rows: RowStage,
}

/// What happens to a parsed row before the index: its timestamp, the
/// transforms, the message-time window and the filter.
pub struct RowStage {
    ts_slot: usize,
    ts_column: String,
    timestamps: TimestampParser,
    transforms: Option<Transforms>,
    /// transformSpec.filter: rows it rejects are thrown away.
    filter: Option<Filter>,
    minimum_message_time: Option<i64>,
    maximum_message_time: Option<i64>,
}

/// A parsed row's fate.
pub enum RowFate {
    /// Index it at this time.
    Index(i64),
    /// Thrown away (filter or message-time window), with the reason.
    ThrownAway(&'static str),
    /// Unparseable, with the reason.
    Unparseable(String),
}

impl RowStage {
    pub fn prepare(&mut self, row: &mut Vec<Value<'_>>) -> RowFate {
        let mut time = match self
            .timestamps
            .parse(row.get(self.ts_slot).unwrap_or(&Value::Null))
        {
            Ok(t) => t,
            Err(e) => return RowFate::Unparseable(format!("column {}: {e}", self.ts_column)),
        };
        if let Some(t) = &mut self.transforms
            && let Err(e) = t.apply(row, &mut time)
        {
            return RowFate::Unparseable(e);
        }
        if self.minimum_message_time.is_some_and(|m| time < m)
            || self.maximum_message_time.is_some_and(|m| time > m)
        {
            return RowFate::ThrownAway("outside minimumMessageTime / maximumMessageTime");
        }
        if let Some(f) = &self.filter {
            match f.test(row, time) {
                Ok(true) => {}
                Ok(false) => return RowFate::ThrownAway("rejected by the transformSpec filter"),
                Err(e) => return RowFate::Unparseable(format!("filter: {e}")),
            }
        }
        RowFate::Index(time)
    }
}

impl Pipeline {
    pub fn new(task: &Task) -> Pipeline {
        let r = &task.resolved;
        let mut parser = RowParser::new(task);
        let mut index = IncrementalIndex::new(
            task.segment_granularity().clone(),
            task.query_granularity().clone(),
            task.data_schema.granularity_spec.rollup,
        );
        for d in &r.dimensions {
            let slot = parser.fields.slot(&d.name);
            let numeric = match d.kind {
                DimensionType::String => None,
                DimensionType::Long => Some(NumType::Long),
                DimensionType::Float => Some(NumType::Float),
                DimensionType::Double => Some(NumType::Double),
            };
            index.add_typed_dimension(&d.name, slot, numeric);
            index.set_multi_value_handling(d.multi_value_handling);
        }
        for a in &r.aggregators {
            let input = match &a.expression {
                Some(source) => MetricInput::Expr(
                    Expr::compile(source, &mut parser.fields)
                        .expect("the expression was checked at validation"),
                ),
                None if a.fields.is_empty() => MetricInput::None,
                None => {
                    MetricInput::Slots(a.fields.iter().map(|f| parser.fields.slot(f)).collect())
                }
            };
            let filter = a.filter.as_ref().map(|f| {
                crate::input::filter::compile(f, "filtered aggregator", &mut parser.fields)
                    .expect("the filter was checked at validation")
            });
            index.add_metric_with(a, input, filter);
        }
        let ts_slot = parser.fields.slot(&r.timestamp.column);
        let spec = &task.data_schema.transform_spec;
        let transforms = (!spec.transforms.is_empty()).then(|| {
            Transforms::compile(
                &spec.transforms,
                "dataSchema.transformSpec.transforms",
                &mut parser.fields,
            )
            .expect("the transforms were checked at validation")
        });
        let filter = spec.filter.as_ref().filter(|f| !f.is_null()).map(|f| {
            crate::input::filter::compile(f, "dataSchema.transformSpec.filter", &mut parser.fields)
                .expect("the filter was checked at validation")
        });
        let timestamps = TimestampParser::new(
            r.timestamp_format.clone().expect("validated task"),
            r.missing_timestamp,
        );
        Pipeline {
            parser,
            index,
            rows: RowStage {
                ts_slot,
                ts_column: r.timestamp.column.clone(),
                timestamps,
                transforms,
                filter,
                minimum_message_time: r.minimum_message_time,
                maximum_message_time: r.maximum_message_time,
            },
        }
    }
}
