//! The resume codec: [`ResumePoint`], carried as the committed offset's
//! metadata, and the versioned `v1;k=v;…` field syntax the merge stage's
//! metadata shares.

use std::fmt::Write as _;

use rustc_hash::FxHashMap;

/// Where and how to resume a partition after a restart; carried in the
/// committed offset's metadata (see [`ResumePoint::to_metadata`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// Re-read the input partition from this offset.
    pub replay_from_offset: i64,
    /// The partition's head just before `replay_from_offset`.
    pub head_before: Option<i64>,
    /// Every window starting before this was already emitted.
    pub emitted_before: Option<i64>,
    /// Recorded idle advances `(at_offset, head_ms)` with `at_offset >= replay_from_offset`:
    /// applied before processing the message at `at_offset`.
    pub idle_advances: Vec<(i64, i64)>,
    /// The recorded ingest clock `(from_offset, wall_ms)`: messages from
    /// `from_offset` on (up to the next entry) are judged against `wall_ms`.
    /// The first entry is the last one recorded at or before
    /// `replay_from_offset` (the base), the others follow it.
    pub clock: Vec<(i64, i64)>,
}

/// Why resume metadata could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("unsupported resume metadata version")]
    Version,
    #[error("resume metadata of a newer rampart (format v{0}; this one reads v1)")]
    NewerVersion(u32),
    #[error("malformed resume metadata field `{0}`")]
    Malformed(&'static str),
}

fn format_optional(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn parse_i64(text: &str, field: &'static str) -> Result<i64, ResumeError> {
    text.parse().map_err(|_| ResumeError::Malformed(field))
}

fn parse_optional(text: &str, field: &'static str) -> Result<Option<i64>, ResumeError> {
    if text == "-" {
        Ok(None)
    } else {
        parse_i64(text, field).map(Some)
    }
}

/// Splits "v1;k=v;k=v" into its fields after checking the version.
pub(crate) fn metadata_fields(text: &str) -> Result<FxHashMap<&str, &str>, ResumeError> {
    let mut parts = text.split(';');
    match parts.next() {
        Some("v1") => {}
        Some(version) => {
            let newer = version
                .strip_prefix('v')
                .and_then(|number| number.parse::<u32>().ok())
                .filter(|number| *number > 1);
            return Err(newer.map_or(ResumeError::Version, ResumeError::NewerVersion));
        }
        None => return Err(ResumeError::Version),
    }
    let mut fields = FxHashMap::default();
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or(ResumeError::Malformed("field"))?;
        fields.insert(key, value);
    }
    Ok(fields)
}

impl ResumePoint {
    /// Compact, versioned text:
    /// `v1;r=<offset>;h=<head|->;e=<emitted|->;i=<off>:<head>,...;c=<off>:<ms>,+<d_off>:+<d_ms>,...`
    /// (the clock after its first entry as differences to the previous one).
    pub fn to_metadata(&self) -> String {
        let mut text = format!(
            "v1;r={};h={};e={};i=",
            self.replay_from_offset,
            format_optional(self.head_before),
            format_optional(self.emitted_before)
        );
        for (i, (offset, head)) in self.idle_advances.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{offset}:{head}");
        }
        let mut previous: Option<(i64, i64)> = None;
        for (i, &(offset, wall_ms)) in self.clock.iter().enumerate() {
            text.push_str(if i == 0 { ";c=" } else { "," });
            match previous {
                None => {
                    let _ = write!(text, "{offset}:{wall_ms}");
                }
                Some((previous_offset, previous_ms)) => {
                    let _ = write!(
                        text,
                        "{:+}:{:+}",
                        offset.wrapping_sub(previous_offset),
                        wall_ms.wrapping_sub(previous_ms)
                    );
                }
            }
            previous = Some((offset, wall_ms));
        }
        text
    }

    /// Parses [`ResumePoint::to_metadata`] output.
    pub fn from_metadata(text: &str) -> Result<Self, ResumeError> {
        let fields = metadata_fields(text)?;
        let get = |key: &'static str| fields.get(key).copied().ok_or(ResumeError::Malformed(key));
        let mut idle_advances = Vec::new();
        let idle = get("i")?;
        if !idle.is_empty() {
            for pair in idle.split(',') {
                let (offset, head) = pair.split_once(':').ok_or(ResumeError::Malformed("i"))?;
                idle_advances.push((parse_i64(offset, "i")?, parse_i64(head, "i")?));
            }
        }
        // `c` is absent in metadata written before the ingest clock existed.
        let mut clock: Vec<(i64, i64)> = Vec::new();
        if let Some(entries) = fields.get("c").filter(|c| !c.is_empty()) {
            for (i, pair) in entries.split(',').enumerate() {
                let (offset, wall_ms) = pair.split_once(':').ok_or(ResumeError::Malformed("c"))?;
                let (offset, wall_ms) = (parse_i64(offset, "c")?, parse_i64(wall_ms, "c")?);
                clock.push(match clock.last() {
                    Some(&(previous_offset, previous_ms)) if i > 0 => (
                        previous_offset.wrapping_add(offset),
                        previous_ms.wrapping_add(wall_ms),
                    ),
                    _ => (offset, wall_ms),
                });
            }
        }
        Ok(ResumePoint {
            replay_from_offset: parse_i64(get("r")?, "r")?,
            head_before: parse_optional(get("h")?, "h")?,
            emitted_before: parse_optional(get("e")?, "e")?,
            idle_advances,
            clock,
        })
    }
}
