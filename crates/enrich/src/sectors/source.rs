//! Reading an asset inventory: CSV and TOML files, entry validation (CIDR and
//! `taxonomy:code` sector strings), and every problem reported with its line and key.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use ipnetwork::IpNetwork;
use serde::Deserialize;

use super::{CISA_SECTORS, SectorTable};
use crate::EnrichError;

/// One problem in a sector table source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectorIssue {
    /// 1-based line (for entries given in code: the 1-based entry number).
    pub line: usize,
    /// The field or key at fault, e.g. `cidr` or `asset[2].sector`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SectorIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "line {} ({k}): {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// All problems found while loading a sector table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {} error(s) in sector table:\n  {}", issues.len(), join(issues))]
pub struct SectorTableError {
    /// File path or other name of the source.
    pub source_name: String,
    /// Every problem, in source order.
    pub issues: Vec<SectorIssue>,
}

fn join(issues: &[SectorIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Validates and canonicalises a sector string (`energy` -> `cisa:energy`).
pub fn parse_sector(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    let (taxonomy, code) = s.split_once(':').unwrap_or(("cisa", s.as_str()));
    let slug = |what: &str, v: &str| -> Result<(), String> {
        if !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            Ok(())
        } else {
            Err(format!("{what} {v:?} must be non-empty [a-z0-9-]+"))
        }
    };
    slug("taxonomy", taxonomy)?;
    slug("code", code)?;
    if taxonomy == "cisa" && !CISA_SECTORS.contains(&code) {
        return Err(format!(
            "{code:?} is not a CISA sector (one of: {})",
            CISA_SECTORS.join(", ")
        ));
    }
    Ok(format!("{taxonomy}:{code}"))
}

/// Parses a CIDR (or bare address), rejecting host bits; IPv4-mapped IPv6
/// networks become IPv4.
pub(crate) fn parse_cidr(s: &str) -> Result<IpNetwork, String> {
    let s = s.trim();
    let net = if s.contains('/') {
        s.parse::<IpNetwork>()
            .map_err(|e| format!("{s:?} is not a CIDR: {e}"))?
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("{s:?} is not a CIDR or an IP address"))?;
        IpNetwork::from(ip)
    };
    if net.network() != net.ip() {
        return Err(format!(
            "{s} has host bits set (did you mean {}/{}?)",
            net.network(),
            net.prefix()
        ));
    }
    Ok(normalize(net))
}

fn normalize(net: IpNetwork) -> IpNetwork {
    if let IpNetwork::V6(v6) = net
        && let Some(v4) = v6.ip().to_ipv4_mapped()
        && v6.prefix() >= 96
        && let Ok(n) = ipnetwork::Ipv4Network::new(v4, v6.prefix() - 96)
    {
        return IpNetwork::V4(n);
    }
    net
}

impl SectorTable {
    /// Loads a `.csv` or `.toml` file (chosen by extension).
    pub fn load(path: &Path) -> Result<Self, EnrichError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnrichError::Io {
            path: path.to_owned(),
            source,
        })?;
        let name = path.display().to_string();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Self::from_csv_str(&text, &name)?),
            Some("toml") => Ok(Self::from_toml_str(&text, &name)?),
            _ => Err(EnrichError::UnknownFormat(path.to_owned())),
        }
    }

    /// Parses CSV text; `source_name` names it in errors.
    pub fn from_csv_str(text: &str, source_name: &str) -> Result<Self, SectorTableError> {
        let mut entries = Vec::new();
        let mut issues = Vec::new();
        let mut seen_content = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let first = !seen_content;
            seen_content = true;
            let fields: Vec<&str> = content.split(',').map(str::trim).collect();
            if first && fields.len() == 2 && fields[0].eq_ignore_ascii_case("cidr") {
                continue; // header
            }
            let &[cidr, sector] = fields.as_slice() else {
                issues.push(SectorIssue {
                    line,
                    key: None,
                    message: format!("expected `cidr,sector`, found {} field(s)", fields.len()),
                });
                continue;
            };
            let entry = check(line, cidr, "cidr", sector, "sector", &mut issues);
            entries.extend(entry);
        }
        Self::finish(source_name, entries, issues)
    }

    /// Parses TOML text (`[[asset]] cidr = "..." sector = "..."`).
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, SectorTableError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            asset: Vec<Asset>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Asset {
            cidr: toml::Spanned<String>,
            sector: toml::Spanned<String>,
        }
        let lines = LineIndex::new(text);
        let line_of = |offset: usize| lines.line_of(offset);
        let file: File = match toml::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                return Err(SectorTableError {
                    source_name: source_name.to_owned(),
                    issues: vec![SectorIssue {
                        line: e.span().map_or(1, |s| line_of(s.start)),
                        key: None,
                        message: e.message().to_owned(),
                    }],
                });
            }
        };
        let mut entries = Vec::new();
        let mut issues = Vec::new();
        for (i, a) in file.asset.iter().enumerate() {
            let cidr_line = line_of(a.cidr.span().start);
            let sector_line = line_of(a.sector.span().start);
            let cidr_key = format!("asset[{i}].cidr");
            let sector_key = format!("asset[{i}].sector");
            let net = parse_cidr(a.cidr.get_ref()).map_err(|message| SectorIssue {
                line: cidr_line,
                key: Some(cidr_key),
                message,
            });
            let sector = parse_sector(a.sector.get_ref()).map_err(|message| SectorIssue {
                line: sector_line,
                key: Some(sector_key),
                message,
            });
            match (net, sector) {
                (Ok(n), Ok(s)) => entries.push((cidr_line, n, s)),
                (n, s) => issues.extend(n.err().into_iter().chain(s.err())),
            }
        }
        Self::finish(source_name, entries, issues)
    }

    /// Builds a table from entries given in code (e.g. by loadgen); errors
    /// name the 1-based entry number as the line.
    pub fn from_entries<C, S>(
        entries: impl IntoIterator<Item = (C, S)>,
    ) -> Result<Self, SectorTableError>
    where
        C: AsRef<str>,
        S: AsRef<str>,
    {
        let mut good = Vec::new();
        let mut issues = Vec::new();
        for (i, (c, s)) in entries.into_iter().enumerate() {
            good.extend(check(
                i + 1,
                c.as_ref(),
                "cidr",
                s.as_ref(),
                "sector",
                &mut issues,
            ));
        }
        Self::finish("entries", good, issues)
    }

    fn finish(
        source_name: &str,
        entries: Vec<(usize, IpNetwork, String)>,
        mut issues: Vec<SectorIssue>,
    ) -> Result<Self, SectorTableError> {
        let built = Self::build(entries);
        match built {
            Ok(t) if issues.is_empty() => Ok(t),
            Ok(_) => {
                issues.sort_by_key(|i| i.line);
                Err(SectorTableError {
                    source_name: source_name.to_owned(),
                    issues,
                })
            }
            Err(more) => {
                issues.extend(more);
                issues.sort_by_key(|i| i.line);
                Err(SectorTableError {
                    source_name: source_name.to_owned(),
                    issues,
                })
            }
        }
    }
}

/// Where each line of a text starts, so the line of any byte offset is a
/// binary search (counting newlines up to each offset made loading a large
/// table quadratic).
pub(crate) struct LineIndex {
    /// Byte offset of the start of every line after the first.
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let starts = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset) + 1
    }
}

/// Parses one entry, recording every problem with its line and key.
fn check(
    line: usize,
    cidr: &str,
    cidr_key: &str,
    sector: &str,
    sector_key: &str,
    issues: &mut Vec<SectorIssue>,
) -> Option<(usize, IpNetwork, String)> {
    let net = parse_cidr(cidr).map_err(|message| SectorIssue {
        line,
        key: Some(cidr_key.to_owned()),
        message,
    });
    let sector = parse_sector(sector).map_err(|message| SectorIssue {
        line,
        key: Some(sector_key.to_owned()),
        message,
    });
    match (net, sector) {
        (Ok(n), Ok(s)) => Some((line, n, s)),
        (n, s) => {
            issues.extend(n.err().into_iter().chain(s.err()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_agrees_with_counting_newlines() {
        let text = "a\n\nbc\nd\n\n";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            let counted = text
                .get(..offset.min(text.len()))
                .map_or(1, |s| s.matches('\n').count() + 1);
            assert_eq!(index.line_of(offset), counted, "offset {offset}");
        }
        assert_eq!(LineIndex::new("").line_of(0), 1);
    }
}
