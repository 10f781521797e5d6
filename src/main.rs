//! The command line only; the work is in the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kinesis_peon::segment::reader::{SegmentFiles, SegmentParts, read_bitmaps, read_segment};
use kinesis_peon::source::make_dump::{DumpCompression, LineFormat, MakeDumpOptions, make_dump};
use kinesis_peon::spec::load_task;
use kinesis_peon::spec::time::format_iso;
use kinesis_peon::task::{RunOptions, RunSummary, run};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

// Records are allocated on fetch threads and freed on the poll thread;
// glibc's malloc spent about 7% of a replay's CPU on that (consolidating
// and unlinking chunks), mimalloc far less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kinesis-peon",
    version,
    about = "A native Apache Druid Kinesis indexing task"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a task file and print the effective task (Druid defaults filled in).
    Validate { task: PathBuf },
    /// Run a task into local deep storage and the embedded metadata store:
    /// replaying a recorded shard dump, or without --dump reading the live
    /// stream the task names.
    Run {
        #[arg(long)]
        task: PathBuf,
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Runtime properties as a Java properties file (druid.kinesis.accessKey, ...).
        #[arg(long)]
        properties: Option<PathBuf>,
        /// One runtime property, key=value (repeatable), as Java's -D.
        #[arg(short = 'D', value_name = "KEY=VALUE")]
        define: Vec<String>,
        /// Where deep storage, the metadata store and task files go.
        #[arg(long, default_value = "var")]
        base_dir: PathBuf,
        /// Live reads: finish a shard without an end sequence number once it
        /// is caught up (nothing new, MillisBehindLatest 0), then publish.
        #[arg(long)]
        until_caught_up: bool,
        /// Print Druid's ingestion metrics summed over the run at the end
        /// (a live read also prints each emission as JSON lines).
        #[arg(long)]
        print_metrics: bool,
    },
    /// Replay a dump and report throughput, CPU time, peak memory and time per stage.
    Bench {
        #[arg(long)]
        task: PathBuf,
        #[arg(long)]
        dump: PathBuf,
        /// A fresh directory is made inside it (default: the temp directory) and removed afterwards.
        #[arg(long)]
        base_dir: Option<PathBuf>,
        /// Replay the dump this many times in this process: the first pass
        /// is reported as a single run is, the others apart (a long-running
        /// task's steady state: memory reused, code and data warm).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        passes: u32,
        /// One runtime property, key=value (repeatable), as `run` takes it
        /// (`-D druid.storage.zip=true` measures zipped deep storage).
        #[arg(short = 'D', value_name = "KEY=VALUE")]
        define: Vec<String>,
        /// Print Druid's ingestion metrics summed over the first pass.
        #[arg(long)]
        print_metrics: bool,
    },
    /// Capture a live stream (every shard, closed ones and their children
    /// too) into a dump that replays like the live stream.
    Record {
        #[arg(long)]
        stream: String,
        /// A URL (http://127.0.0.1:4567) or a host (kinesis.eu-west-1.amazonaws.com).
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = ["trim-horizon", "latest"], default_value = "trim-horizon")]
        from: String,
        /// Stop each shard when it is read up to now (the default).
        #[arg(long, conflicts_with = "for_duration")]
        until_caught_up: bool,
        /// Stop after this long (ISO-8601 like PT30S, or seconds).
        #[arg(long = "for", value_name = "DURATION")]
        for_duration: Option<String>,
        #[arg(long)]
        properties: Option<PathBuf>,
        #[arg(short = 'D', value_name = "KEY=VALUE")]
        define: Vec<String>,
    },
    /// Turn a newline-delimited json/csv/tsv file into a shard dump.
    MakeDump {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        shards: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "stream")]
        stream: String,
        /// Field (json) or header column (csv/tsv) whose value is the partition key; the row number otherwise.
        #[arg(long)]
        partition_key: Option<String>,
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[arg(long, value_enum, default_value = "none")]
        compress: Compress,
        /// Take only the first N rows.
        #[arg(long)]
        limit: Option<u64>,
        /// Repeat the input N times, copy k with its json "timestamp"
        /// shifted by k x 366 days (the 10x flights benchmark input).
        #[arg(long, default_value_t = 1)]
        copies: u32,
        /// csv/tsv: the first line is a header (skipped). Without this or
        /// --no-header, it is decided from the line and said.
        #[arg(long, conflicts_with = "no_header")]
        header: bool,
        /// csv/tsv: the first line is a record.
        #[arg(long)]
        no_header: bool,
    },
    /// The first records of a dump as parsed and as indexed, with each
    /// parse error beside its record (like Druid's data-loader sampler).
    Sample {
        #[arg(long)]
        task: PathBuf,
        #[arg(long)]
        dump: PathBuf,
        /// Records to read.
        #[arg(short = 'n', long, default_value_t = 20)]
        records: usize,
    },
    /// Print a segment's rows as JSON lines (index.zip or a segment directory).
    DumpSegment {
        path: PathBuf,
        /// Print rows as JSON lines (the default).
        #[arg(long, conflicts_with_all = ["metadata", "bitmaps"])]
        rows: bool,
        /// Print index.drd and metadata.drd instead of rows.
        #[arg(long, conflicts_with = "bitmaps")]
        metadata: bool,
        /// Print each string dimension's value → rows bitmaps.
        #[arg(long)]
        bitmaps: bool,
        /// Only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Csv,
    Tsv,
}

#[derive(Clone, Copy, ValueEnum)]
enum Compress {
    None,
    Gzip,
    Zstd,
}

/// Transparent huge pages off for this process unless the operator asks
/// for them (`MIMALLOC_ALLOW_THP=1`). mimalloc asks for them on every range
/// it reserves, and the index's columns each grow in their own range, so a
/// run touched twice the memory it used (csv bench: 34 huge pages, 68 MiB,
/// against 31 MiB in 4 KiB pages). Fresh memory is the dearest thing a
/// short task does on a VM whose host takes freed pages back (free page
/// reporting): there a csv bench run after a pause took 0.357 CPU-s with
/// huge pages and 0.269 without (10 runs each, 4 s apart); back to back,
/// with recently freed pages at hand, the two are level.
fn disable_huge_pages_unless_asked() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Best effort: on a kernel without the call nothing changes.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
}

fn main() -> ExitCode {
    disable_huge_pages_unless_asked();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        // A reader that stopped early (`| head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Validate { task } => {
            let bytes =
                std::fs::read(&task).with_context(|| format!("reading {}", task.display()))?;
            // The checks `run` makes before reading anything.
            let loaded = load_task(&bytes)
                .map_err(|e| e.0.iter().map(ToString::to_string).collect())
                .and_then(
                    |loaded| match kinesis_peon::task::check_supported(&loaded.task) {
                        Ok(()) => Ok(loaded),
                        Err(e) => Err(vec![format!("{e:#}")]),
                    },
                );
            match loaded {
                Ok(loaded) => {
                    for w in &loaded.warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("{}", serde_json::to_string_pretty(&loaded.task)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    eprintln!("{}: invalid task", task.display());
                    for e in &errors {
                        eprintln!("  {e}");
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Run {
            task,
            dump,
            properties,
            define,
            base_dir,
            until_caught_up,
            print_metrics,
        } => {
            stop_on_signals()?;
            let summary = run(&RunOptions {
                task_file: task,
                dump,
                properties: runtime_properties(properties.as_deref(), &define)?,
                base_dir,
                progress: std::io::stderr().is_terminal(),
                stage_timing: false,
                until_caught_up,
                print_metrics,
            })?;
            print_summary(&summary);
            if print_metrics {
                print_metric_totals(&summary);
            }
            Ok(if summary.error.is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Bench {
            task,
            dump,
            base_dir,
            passes,
            define,
            print_metrics,
        } => bench(
            task,
            dump,
            base_dir,
            passes,
            runtime_properties(None, &define)?,
            print_metrics,
        ),
        Command::Record {
            stream,
            endpoint,
            out,
            from,
            until_caught_up: _,
            for_duration,
            properties,
            define,
        } => {
            use kinesis_peon::source::record::{From, RecordOptions, Until, record};
            let props = runtime_properties(properties.as_deref(), &define)?;
            let until = match for_duration {
                None => Until::CaughtUp,
                Some(d) => Until::For(parse_duration(&d)?),
            };
            let prop = |k: &str| props.get(k).cloned();
            let counts = record(&RecordOptions {
                config: kinesis_peon::source::kinesis::KinesisConfig {
                    endpoint,
                    stream,
                    static_credentials: prop("druid.kinesis.accessKey")
                        .zip(prop("druid.kinesis.secretKey")),
                    assumed_role: None,
                    records_per_fetch: 10_000,
                    fetch_delay: std::time::Duration::ZERO,
                    // Druid's default fetchSequenceNumberTimeout.
                    retry_timeout: std::time::Duration::from_secs(20),
                },
                out: out.clone(),
                from: if from == "latest" {
                    From::Latest
                } else {
                    From::TrimHorizon
                },
                until,
            })?;
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            println!(
                "recorded {total} records of {} shards into {}",
                counts.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::MakeDump {
            input,
            shards,
            out,
            stream,
            partition_key,
            format,
            compress,
            limit,
            copies,
            header,
            no_header,
        } => {
            let summary = make_dump(&MakeDumpOptions {
                input,
                format: format.map(|f| match f {
                    Format::Json => LineFormat::Json,
                    Format::Csv => LineFormat::Csv,
                    Format::Tsv => LineFormat::Tsv,
                }),
                shards,
                out: out.clone(),
                stream,
                partition_key,
                compression: match compress {
                    Compress::None => DumpCompression::None,
                    Compress::Gzip => DumpCompression::Gzip,
                    Compress::Zstd => DumpCompression::Zstd,
                },
                limit,
                copies,
                header: (header || no_header).then_some(header),
            })?;
            if let Some(decision) = &summary.header_decision {
                println!("{decision}");
            }
            println!(
                "read {} lines: {} records written, {} header{} skipped, {} blank",
                summary.lines_read,
                summary.records,
                summary.headers_skipped,
                if summary.headers_skipped == 1 {
                    ""
                } else {
                    "s"
                },
                summary.blank_lines
            );
            println!(
                "wrote {} records into {} shards under {} ({})",
                summary.records,
                summary.per_shard.len(),
                out.display(),
                summary
                    .per_shard
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sample {
            task,
            dump,
            records,
        } => {
            let out = kinesis_peon::task::sample::sample(&task, &dump, records)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::DumpSegment {
            path,
            rows: _,
            metadata,
            bitmaps,
            columns,
        } => dump_segment(path, metadata, bitmaps, columns),
    }
}

/// SIGTERM and Ctrl-C ask the task to stop (persist, no publish, exit 0),
/// as a MiddleManager stops a peon it will restore; a second one ends the
/// process at once. The signals are blocked here, before any thread
/// starts, and taken by one thread with sigwait (no handler runs).
fn stop_on_signals() -> Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().context("blocking SIGTERM and SIGINT")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(signal) = set.wait() {
                log::warn!("{signal}: stopping; what was read is persisted, nothing published");
                kinesis_peon::task::request_stop();
            }
            if set.wait().is_ok() {
                std::process::exit(130);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

fn print_summary(s: &RunSummary) {
    let secs = s.wall.as_secs_f64();
    let bytes: u64 = s.segments.iter().map(|p| p.segment.size).sum();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "task        {}", s.task_id);
    let _ = writeln!(
        out,
        "status      {}",
        if s.stopped {
            "STOPPED (persisted, nothing published)"
        } else if s.error.is_some() {
            "FAILED"
        } else {
            "SUCCESS"
        }
    );
    if let Some(e) = &s.error {
        let _ = writeln!(out, "error       {e}");
    }
    let _ = writeln!(
        out,
        "records     {} ({:.1} MB)",
        s.records,
        s.stats.processed_bytes as f64 / 1e6
    );
    if s.restored_records > 0 {
        let _ = writeln!(
            out,
            "restored    {} records a stopped run had read and persisted",
            s.restored_records
        );
    }
    let _ = writeln!(
        out,
        "rows in     {} processed, {} with errors, {} unparseable, {} thrown away",
        s.stats.processed, s.stats.processed_with_error, s.stats.unparseable, s.stats.thrown_away
    );
    let _ = writeln!(out, "rows out    {} (after rollup)", s.rows_out);
    if !s.lag_millis.is_empty() {
        let lags: Vec<String> = s
            .lag_millis
            .iter()
            .map(|(shard, ms)| format!("{shard} {ms} ms"))
            .collect();
        let _ = writeln!(out, "lag         {} (MillisBehindLatest)", lags.join(", "));
    }
    if s.shards.iter().any(|r| !r.parents.is_empty()) {
        // Resharding: say which shards were read and in what order.
        for r in &s.shards {
            let from = if r.parents.is_empty() {
                String::new()
            } else {
                format!(", child of {}", r.parents.join(" and "))
            };
            let _ = writeln!(
                out,
                "shard       {} {} records, to {}{from}",
                r.shard_id, r.records, r.end
            );
        }
    }
    if s.already_published {
        let _ = writeln!(
            out,
            "segments    already published by an earlier run; nothing added"
        );
    } else {
        let _ = writeln!(
            out,
            "segments    {} ({:.1} MB uncompressed)",
            s.segments.len(),
            bytes as f64 / 1e6
        );
    }
    let _ = writeln!(out, "persists    {} intermediate", s.persists);
    let _ = writeln!(
        out,
        "seconds     {secs:.2} ({:.0} rows/s)",
        (s.stats.processed + s.stats.processed_with_error) as f64 / secs.max(1e-9)
    );
    if let Some(mib) = peak_rss_mib() {
        let _ = writeln!(out, "peak RSS    {mib:.1} MiB");
    }
    for e in s.saved_errors.iter().take(5) {
        let _ = writeln!(out, "parse error {e}");
    }
    let _ = writeln!(out, "status file {}", s.status_file.display());
}

/// `--print-metrics`: the metrics Druid's emitter would have sent, summed
/// over the run (docs/metrics.md).
fn print_metric_totals(s: &RunSummary) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "--- metrics (summed over the run)");
    let _ = write!(out, "{}", kinesis_peon::metrics::format_table(&s.metrics));
}

/// The process's peak resident set so far: its memory's own high-water
/// mark (`VmHWM`). getrusage's ru_maxrss is no good here: a process started
/// by vfork and exec (Rust's and Java's way) inherits its parent's peak,
/// so a peon spawned by a large MiddleManager, or by a test binary holding
/// other tests' data, reported theirs (measured: 300.7 MiB reported for a
/// run whose own peak was 177 MiB).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let hwm_kib = status.as_deref().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    });
    match hwm_kib {
        Some(kib) => Some(kib / 1024.0),
        None => {
            let usage =
                nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok()?;
            Some(usage.max_rss() as f64 / 1024.0)
        }
    }
}

/// A duration as ISO-8601 (PT30S, PT5M) or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration> {
    if let Ok(secs) = text.trim().parse::<f64>() {
        // "inf", "NaN" and negatives parse as f64 but are no duration.
        return std::time::Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|_| secs.is_finite())
            .with_context(|| {
                format!("{text}: a duration is a finite, non-negative number of seconds or an ISO-8601 period like PT30S")
            });
    }
    let period = kinesis_peon::spec::period::Period::parse(text).map_err(anyhow::Error::msg)?;
    let ms = period
        .fixed_millis()
        .with_context(|| format!("{text}: a fixed duration is needed"))?;
    Ok(std::time::Duration::from_millis(ms.max(0) as u64))
}

/// Runtime properties: a Java properties file, then `-D key=value` on top.
fn runtime_properties(
    file: Option<&std::path::Path>,
    define: &[String],
) -> Result<std::collections::BTreeMap<String, String>> {
    use kinesis_peon::spec::properties;
    let mut out = properties::Properties::new();
    if let Some(path) = file {
        properties::read_file(path, &mut out)?;
    }
    for d in define {
        properties::define(d, &mut out)?;
    }
    Ok(out)
}

/// User and system CPU seconds of this process so far.
fn cpu_seconds() -> Result<(f64, f64)> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok((secs(usage.user_time()), secs(usage.system_time())))
}

fn bench(
    task: PathBuf,
    dump: PathBuf,
    base_dir: Option<PathBuf>,
    passes: u32,
    properties: std::collections::BTreeMap<String, String>,
    print_metrics: bool,
) -> Result<ExitCode> {
    // Every bench starts from nothing: a fresh directory of its own inside
    // the given one (or the temp directory), removed afterwards.
    let base = base_dir
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("kinesis-peon-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let options = |base_dir: PathBuf| RunOptions {
        task_file: task.clone(),
        dump: Some(dump.clone()),
        properties: properties.clone(),
        base_dir,
        progress: false,
        stage_timing: true,
        until_caught_up: false,
        print_metrics: false,
    };
    let before = cpu_seconds()?;
    let summary = run(&options(base.clone()))?;
    let after = cpu_seconds()?;
    let user_secs = after.0 - before.0;
    let system_secs = after.1 - before.1;
    let cpu_secs = user_secs + system_secs;
    print_summary(&summary);
    if print_metrics {
        print_metric_totals(&summary);
    }
    let rows = (summary.stats.processed + summary.stats.processed_with_error) as f64;
    let wall = summary.wall.as_secs_f64();
    let st = &summary.stages;
    println!("--- bench");
    println!("rows/s              {:.0}", rows / wall);
    println!("rows per CPU-second {:.0}", rows / cpu_secs);
    println!(
        "input MB/s          {:.1}",
        summary.stats.processed_bytes as f64 / 1e6 / wall
    );
    // The kernel's share apart: on VMs it swings with the cost of
    // zeroing fresh pages, which is not this program's doing.
    println!(
        "CPU seconds         {cpu_secs:.3} (user {user_secs:.3}, system {system_secs:.3}; wall {wall:.3})"
    );
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS            {mib:.1} MiB");
    }
    // Whether this run had transparent huge pages (see
    // `disable_huge_pages_unless_asked`): figures with and without differ.
    let huge_pages_off = nix::sys::prctl::get_thp_disable().unwrap_or(false);
    println!(
        "huge pages          {}",
        if huge_pages_off {
            "off for this process (MIMALLOC_ALLOW_THP=1 allows them)"
        } else {
            "allowed"
        }
    );
    println!(
        "stages (s)          read {:.2} (fetch threads) | parse {:.2} | index {:.2} | persist {:.2} | push {:.2} | publish {:.2}",
        st.read.as_secs_f64(),
        st.parse.as_secs_f64(),
        st.index.as_secs_f64(),
        st.persist.as_secs_f64(),
        st.push.as_secs_f64(),
        st.publish.as_secs_f64()
    );
    if std::env::var_os("KINESIS_PEON_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    if passes > 1 && summary.error.is_none() {
        // Each later pass into a directory of its own, removed between
        // passes (outside the measured time).
        let mut later: Vec<(f64, f64)> = Vec::new();
        for pass in 2..=passes {
            let dir = base.with_file_name(format!(
                "kinesis-peon-bench-{}-pass-{pass}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let before = cpu_seconds()?;
            let s = run(&options(dir.clone()))?;
            let after = cpu_seconds()?;
            let _ = std::fs::remove_dir_all(&dir);
            if let Some(e) = &s.error {
                anyhow::bail!("pass {pass} failed: {e}");
            }
            later.push((after.0 - before.0, after.1 - before.1));
        }
        let mut cpu: Vec<f64> = later.iter().map(|(u, s)| u + s).collect();
        cpu.sort_by(f64::total_cmp);
        let median = cpu[cpu.len() / 2];
        let mut users: Vec<f64> = later.iter().map(|(u, _)| *u).collect();
        users.sort_by(f64::total_cmp);
        println!("--- later passes ({})", later.len());
        println!(
            "rows per CPU-second {:.0} median (fastest {:.0}, slowest {:.0})",
            rows / median,
            rows / cpu[0],
            rows / cpu[cpu.len() - 1]
        );
        println!(
            "CPU seconds         {median:.3} median (user {:.3} median)",
            users[users.len() / 2]
        );
    }
    Ok(if summary.error.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn dump_segment(
    path: PathBuf,
    metadata: bool,
    bitmaps: bool,
    columns: Vec<String>,
) -> Result<ExitCode> {
    let wanted = |name: &str| columns.is_empty() || columns.iter().any(|c| c == name);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if metadata || bitmaps {
        let files = SegmentFiles::open(&path)?;
        let SegmentParts {
            entries,
            index: drd,
            metadata: meta,
        } = files.parts()?;
        if bitmaps {
            let mut doc = serde_json::Map::new();
            for dim in drd.dimensions.iter().filter(|d| wanted(d)) {
                let bytes = entries
                    .get(dim.as_str())
                    .with_context(|| format!("column {dim} missing"))?;
                let mut values = serde_json::Map::new();
                for (value, rows) in read_bitmaps(dim, bytes)? {
                    values.insert(
                        value.unwrap_or_else(|| "null".into()),
                        rows.iter().collect::<Vec<u32>>().into(),
                    );
                }
                doc.insert(dim.clone(), values.into());
            }
            writeln!(
                out,
                "{}",
                serde_json::to_string(&serde_json::json!({"bitmaps": doc}))?
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        let doc = serde_json::json!({
            "index.drd": {
                "columns": drd.columns,
                "dimensions": drd.dimensions,
                "interval": format!("{}/{}", format_iso(drd.interval.0), format_iso(drd.interval.1)),
                "bitmapSerdeFactory": serde_json::from_str::<serde_json::Value>(&drd.bitmap_serde).unwrap_or_default(),
            },
            "metadata.drd": meta,
            "smoosh": entries.iter().map(|(k, v)| (k.clone(), v.len())).collect::<std::collections::BTreeMap<_, _>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (_, data) = read_segment(&path)?;
    for row in 0..data.num_rows() {
        let obj = data.row_json(row, wanted);
        out.write_all(&serde_json::to_vec(&obj)?)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
