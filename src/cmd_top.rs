//! `rampart top`: a live view of a running instance, from its `/metrics` and
//! `/ready` (what `vector top` is to Vector). Two views: the pipeline (rates
//! per stage, dedup, late, DLQ by reason, lags, window close latency,
//! checkpoints) and the domain (origin countries, target sectors and attack
//! kinds of the windows closed most recently, from the domain counters, which
//! advance when windows close).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::live_view::{Key, LiveView};
use crate::promtext::{self, Scrape};
use crate::util;

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The /metrics URL of a running `rampart run` (its `[metrics] listen` address).
    #[arg(
        long,
        default_value = "http://127.0.0.1:9898/metrics",
        env = "RAMPART_TOP_METRICS"
    )]
    pub metrics: String,
    /// Time between two scrapes (rates are per second over this interval).
    #[arg(long, default_value = "1s", value_parser = util::parse_duration)]
    pub interval: Duration,
    /// The view to start with (keys switch: p pipeline, d domain, Tab either).
    #[arg(long, value_enum, default_value_t = View::Pipeline)]
    pub view: View,
    /// Print each frame as plain lines instead of redrawing the screen (the
    /// default when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// Stop after this long (default: until q, Esc or Ctrl-C).
    #[arg(long, value_parser = util::parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum View {
    Pipeline,
    Domain,
}

const TIMEOUT: Duration = Duration::from_secs(3);

/// What the domain view shows: the counters' increase in the most recent
/// scrape interval in which windows closed.
#[derive(Default)]
struct LastClosed {
    at: Option<Instant>,
    origins: BTreeMap<String, f64>,
    sectors: BTreeMap<String, f64>,
    kinds: BTreeMap<String, f64>,
}

pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let (host, path) = promtext::split_url(&args.metrics)?;
    // The first scrape decides whether there is anything to watch.
    let first = scrape(&host, &path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: {e:#} (is `rampart run` running, with [metrics] listen at that address?)",
            args.metrics
        )
    })?;
    let mut view = LiveView::start(args.plain)?;
    let mut mode = args.view;
    let started = Instant::now();
    let mut prev = (Instant::now(), first);
    let mut last_closed = LastClosed::default();
    // Both views of the latest scrape, so a key switches at once.
    let mut frames: Option<Frames> = None;
    let mut error: Option<String> = None;
    let mut next_scrape = Instant::now() + args.interval;
    loop {
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let wait = next_scrape.saturating_duration_since(Instant::now());
        let key = view.next_key(wait);
        match key {
            Some(Key::Quit) => break,
            Some(Key::Char('p')) => mode = View::Pipeline,
            Some(Key::Char('d')) => mode = View::Domain,
            Some(Key::Tab) => {
                mode = match mode {
                    View::Pipeline => View::Domain,
                    View::Domain => View::Pipeline,
                }
            }
            Some(Key::Char(_)) | None => {}
        }
        let scraped = Instant::now() >= next_scrape;
        if scraped {
            next_scrape = Instant::now() + args.interval;
            match scrape(&host, &path) {
                Ok(now) => {
                    let dt = prev.0.elapsed().as_secs_f64().max(1e-3);
                    last_closed.update(&prev.1, &now);
                    frames = Some(Frames {
                        ready: readiness(&host),
                        pipeline: pipeline_view(&prev.1, &now, dt),
                        domain: domain_view(&now, &last_closed),
                    });
                    prev = (Instant::now(), now);
                    error = None;
                }
                Err(e) => error = Some(format!("{e:#}")),
            }
        }
        // A plain view prints once per scrape; the full screen redraws on keys and resizes too.
        if scraped || view.is_full_screen() {
            let frame = render(
                &args.metrics,
                mode,
                &view,
                frames.as_ref(),
                error.as_deref(),
            );
            view.show(&frame)?;
        }
    }
    let last = render(
        &args.metrics,
        mode,
        &view,
        frames.as_ref(),
        error.as_deref(),
    );
    view.finish(&last)
}

struct Frames {
    ready: String,
    pipeline: Vec<String>,
    domain: Vec<String>,
}

fn render(
    url: &str,
    mode: View,
    view: &LiveView,
    frames: Option<&Frames>,
    error: Option<&str>,
) -> Vec<String> {
    let ready = frames.map_or("connecting", |f| f.ready.as_str());
    let mut lines = vec![header(url, ready, mode, view)];
    if let Some(e) = error {
        lines.push(format!("endpoint unreachable, retrying: {e}"));
    }
    match frames {
        Some(f) => lines.extend(match mode {
            View::Pipeline => f.pipeline.iter().cloned(),
            View::Domain => f.domain.iter().cloned(),
        }),
        None => lines.push("waiting for the second scrape (rates need two)".into()),
    }
    lines
}

fn scrape(host: &str, path: &str) -> anyhow::Result<Scrape> {
    let (status, body) = promtext::http_get(host, path, TIMEOUT)?;
    anyhow::ensure!(status == 200, "http://{host}{path} answered {status}");
    let s = Scrape::parse(&body);
    anyhow::ensure!(
        s.samples.iter().any(|x| x.name.starts_with("rampart_")),
        "http://{host}{path} shows no rampart_ metrics"
    );
    Ok(s)
}

fn readiness(host: &str) -> String {
    match promtext::http_get(host, "/ready", TIMEOUT) {
        Ok((200, _)) => "ready".into(),
        Ok((_, body)) => body.trim().to_string(),
        Err(e) => format!("/ready: {e}"),
    }
}

fn header(url: &str, ready: &str, mode: View, view: &LiveView) -> String {
    let keys = if view.is_full_screen() {
        "   [p] pipeline  [d] domain  [q] quit"
    } else {
        ""
    };
    let name = match mode {
        View::Pipeline => "pipeline",
        View::Domain => "domain",
    };
    format!("rampart top  {url}  {ready}  ({name}){keys}")
}

/// Per-second increase of a counter between two scrapes (0 after a reset).
fn rate(prev: &Scrape, now: &Scrape, name: &str, filter: &[(&str, &str)], dt: f64) -> f64 {
    (now.sum(name, filter) - prev.sum(name, filter)).max(0.0) / dt
}

fn count(v: f64) -> String {
    util::thousands(v.max(0.0).round() as u64)
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part * 100.0 / whole
    } else {
        0.0
    }
}

fn pipeline_view(prev: &Scrape, now: &Scrape, dt: f64) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<8}{:>14}{:>12}{:>12}  {:<9}{:>11}{:>13}{:>13}{:>8}",
        "stage",
        "events in/s",
        "msgs in/s",
        "out/s",
        "output",
        "lag msgs",
        "wm lag",
        "checkpoints",
        "aborts"
    )];
    for stage in ["ingest", "merge"] {
        let st = [("stage", stage)];
        if !now.has("rampart_received_messages_total", &st)
            && !now.has("rampart_checkpoint_commits_total", &st)
        {
            continue;
        }
        let events_in = if now.has("rampart_received_events_total", &st) {
            count(rate(prev, now, "rampart_received_events_total", &st, dt))
        } else {
            "-".into()
        };
        let outputs = now.by_label("rampart_sent_events_total", &st, "output");
        let output = outputs.keys().next().cloned().unwrap_or_default();
        let wm_lag = if now.has("rampart_watermark_lag_seconds", &st) {
            format!(
                "{:.1} s",
                now.sum("rampart_watermark_lag_seconds", &st).max(0.0)
            )
        } else {
            "-".into()
        };
        lines.push(format!(
            "{:<8}{:>14}{:>12}{:>12}  {:<9}{:>11}{:>13}{:>13}{:>8}",
            stage,
            events_in,
            count(rate(prev, now, "rampart_received_messages_total", &st, dt)),
            count(rate(prev, now, "rampart_sent_events_total", &st, dt)),
            output,
            count(now.sum("rampart_consumer_lag_messages", &st)),
            wm_lag,
            count(now.sum("rampart_checkpoint_commits_total", &st)),
            count(now.sum("rampart_checkpoint_aborts_total", &st)),
        ));
    }
    let received = now.sum("rampart_received_events_total", &[("stage", "ingest")]);
    let dups = now.sum("rampart_discarded_events_total", &[("reason", "duplicate")]);
    let late = now.sum("rampart_discarded_events_total", &[("reason", "late")]);
    lines.push(String::new());
    lines.push(format!(
        "events   {} received, {} unique, {} duplicates (dedup ratio {:.2} %), {} late",
        count(received),
        count(now.sum("rampart_unique_events_total", &[])),
        count(dups),
        pct(dups, received),
        count(late)
    ));
    let dlq: f64 = now.sum("rampart_dlq_messages_total", &[]);
    let reasons = now.by_label("rampart_discarded_messages_total", &[], "reason");
    let by_reason: Vec<String> = reasons
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(r, v)| format!("{r} {}", count(*v)))
        .collect();
    lines.push(format!(
        "DLQ      {} messages{}{}",
        count(dlq),
        if by_reason.is_empty() { "" } else { ": " },
        by_reason.join(", ")
    ));
    let buckets = now.buckets(rampart_pipeline::telemetry::WINDOW_CLOSE_LATENCY);
    let latency = match (
        promtext::quantile(&buckets, 0.5),
        promtext::quantile(&buckets, 0.99),
    ) {
        (Some(p50), Some(p99)) => format!("close latency p50 {p50:.3} s, p99 {p99:.3} s"),
        _ => "close latency: no window closed yet".into(),
    };
    lines.push(format!(
        "windows  {} closed, {} rollups published; {latency}",
        count(now.sum("rampart_windows_closed_total", &[])),
        count(now.sum("rampart_rollups_published_total", &[])),
    ));
    lines.push(format!(
        "state    dedup {} entries in {:.1} MiB ({} evicted early), {} partitions replaying, {} rebalances, RSS {:.0} MiB",
        count(now.sum("rampart_dedup_entries", &[])),
        now.sum("rampart_dedup_table_bytes", &[]) / 1_048_576.0,
        count(now.sum("rampart_dedup_evicted_early_entries", &[])),
        count(now.sum("rampart_replaying_partitions", &[])),
        count(now.sum("rampart_rebalances_total", &[])),
        now.sum("rampart_process_resident_memory_bytes", &[]) / 1_048_576.0,
    ));
    let errors = now.by_label("rampart_errors_total", &[], "error_type");
    let errors: Vec<String> = errors
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{k} {}", count(*v)))
        .collect();
    if !errors.is_empty() {
        lines.push(format!("errors   {}", errors.join(", ")));
    }
    lines
}

impl LastClosed {
    fn update(&mut self, prev: &Scrape, now: &Scrape) {
        let delta = |name: &str, label: &str| -> BTreeMap<String, f64> {
            let before = prev.by_label(name, &[], label);
            now.by_label(name, &[], label)
                .into_iter()
                .map(|(k, v)| {
                    let d = v - before.get(&k).copied().unwrap_or(0.0);
                    (k, d)
                })
                .filter(|(_, d)| *d > 0.0)
                .collect()
        };
        let sectors = delta("rampart_attack_sector_events_total", "sector");
        if sectors.is_empty() {
            return;
        }
        self.at = Some(Instant::now());
        self.sectors = sectors;
        self.origins = delta("rampart_attack_origin_events_total", "origin_country");
        self.kinds = delta("rampart_attack_kind_events_total", "kind");
    }
}

/// `name  count  share` rows of the largest entries.
fn ranked(title: &str, map: &BTreeMap<String, f64>, n: usize) -> Vec<String> {
    let total: f64 = map.values().sum();
    let mut v: Vec<(&String, &f64)> = map.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    let mut lines = vec![format!("{title}")];
    lines.extend(
        v.iter()
            .take(n)
            .map(|(k, c)| format!("  {:<28}{:>14}{:>8.1} %", k, count(**c), pct(**c, total))),
    );
    lines
}

fn domain_view(now: &Scrape, last: &LastClosed) -> Vec<String> {
    let Some(at) = last.at else {
        let totals = now.by_label("rampart_attack_sector_events_total", &[], "sector");
        let mut lines = vec![
            "no window has closed since top started; totals since the instance started:".into(),
        ];
        lines.extend(ranked("target sectors (unique events)", &totals, 8));
        lines.extend(ranked(
            "origin countries (unique events)",
            &now.by_label("rampart_attack_origin_events_total", &[], "origin_country"),
            8,
        ));
        return lines;
    };
    let mut lines = vec![format!(
        "windows that closed {:.0} s ago: {} unique events",
        at.elapsed().as_secs_f64(),
        count(last.sectors.values().sum())
    )];
    lines.extend(ranked("top origin countries", &last.origins, 8));
    lines.extend(ranked("top target sectors", &last.sectors, 6));
    lines.extend(ranked("attack kinds", &last.kinds, 4));
    lines
}
