//! Reading a running instance's `/metrics` and `/ready` for `rampart top`: a
//! plain HTTP/1.1 GET over a loopback-or-LAN TCP connection, and a parser of
//! the Prometheus text exposition format (the subset an exporter writes:
//! `name{label="value",...} number`, comments skipped).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// One sample: metric name, labels, value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses an exposition; lines that are not samples are skipped.
    pub(crate) fn parse(text: &str) -> Scrape {
        Scrape {
            samples: text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter_map(parse_sample)
                .collect(),
        }
    }

    /// Samples named `name` whose labels include every `(key, value)` of `filter`.
    pub(crate) fn select<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Sum of the matching samples (0 when there is none).
    pub(crate) fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.select(name, filter).map(|s| s.value).sum()
    }

    /// Whether any sample matches.
    pub(crate) fn has(&self, name: &str, filter: &[(&str, &str)]) -> bool {
        self.select(name, filter).next().is_some()
    }

    /// Sums of the matching samples grouped by the value of `label`.
    pub(crate) fn by_label(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        label: &str,
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.select(name, filter) {
            let key = s.labels.get(label).cloned().unwrap_or_default();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }

    /// Cumulative histogram buckets of `name` (summed over other labels), sorted by bound.
    pub(crate) fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.select(&bucket, &[]) {
            let Some(le) = s.labels.get("le").and_then(|v| parse_number(v)) else {
                continue;
            };
            // Non-negative bounds sort as their bit patterns; +Inf sorts last.
            let e = by_bound.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += s.value;
        }
        by_bound.into_values().collect()
    }
}

fn parse_number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].rfind('}')? + open;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, BTreeMap::new(), rest)
        }
    };
    // The value, optionally followed by a timestamp.
    let value = parse_number(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        out.insert(key.trim().to_string(), value);
    }
}

/// `http://host:port/path` → (`host:port`, `/path`). Only plain HTTP.
pub(crate) fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.starts_with("https://") || url.starts_with("https://") {
        bail!("only http:// endpoints are supported, got {url}");
    }
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    if host.is_empty() {
        bail!("no host in {url:?}");
    }
    Ok((host.to_string(), path.to_string()))
}

/// GETs `path` from `host` (HTTP/1.1, `Connection: close`); returns status and body.
pub(crate) fn http_get(host: &str, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{host} answered something that is not HTTP"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{host} answered without an HTTP status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The `q`-quantile (0..1) of a cumulative histogram, interpolated linearly
/// inside the bucket (as Prometheus' `histogram_quantile` does). `None` without observations.
pub(crate) fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(prev.0);
            }
            let in_bucket = count - prev.1;
            let frac = if in_bucket > 0.0 {
                (rank - prev.1) / in_bucket
            } else {
                1.0
            };
            return Some(prev.0 + (bound - prev.0) * frac);
        }
        prev = (bound, count);
    }
    Some(prev.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_labels_and_histograms() {
        let text = "# HELP x y\n# TYPE rampart_received_events_total counter\n\
            rampart_received_events_total{stage=\"ingest\"} 1200\n\
            rampart_ready 1\n\
            rampart_discarded_messages_total{stage=\"ingest\",reason=\"bad \\\"x\\\", y\"} 3 1700000000\n\
            h_bucket{le=\"0.1\"} 2\nh_bucket{le=\"1\"} 10\nh_bucket{le=\"+Inf\"} 10\n\
            garbage line\n";
        let s = Scrape::parse(text);
        assert_eq!(
            s.sum("rampart_received_events_total", &[("stage", "ingest")]),
            1200.0
        );
        assert_eq!(s.sum("rampart_ready", &[]), 1.0);
        let reasons = s.by_label("rampart_discarded_messages_total", &[], "reason");
        assert_eq!(reasons.get("bad \"x\", y"), Some(&3.0));
        assert_eq!(
            s.buckets("h"),
            vec![(0.1, 2.0), (1.0, 10.0), (f64::INFINITY, 10.0)]
        );
        // Hand computed: rank 5 of 10 falls 3/8 into the (0.1, 1] bucket.
        let p50 = quantile(&s.buckets("h"), 0.5).unwrap_or(-1.0);
        assert!((p50 - (0.1 + 0.9 * 3.0 / 8.0)).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://127.0.0.1:9100/metrics").ok(),
            Some(("127.0.0.1:9100".into(), "/metrics".into()))
        );
        assert_eq!(
            split_url("localhost:9100").ok(),
            Some(("localhost:9100".into(), "/metrics".into()))
        );
        assert!(split_url("https://x/metrics").is_err());
    }
}
