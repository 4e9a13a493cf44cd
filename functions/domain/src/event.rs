//! The stored event envelope: one item of the events table, with the seed article's attribute names
//! (`aggregate_id`, `event_id`, `event_type`, `event_data`, `timestamp`) so that the seed's own query and
//! replay code can still read our table, plus the `version` sort key that makes optimistic concurrency possible,
//! and two attributes the seed did not need: the aggregate type and the event's schema version.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One event as stored (snake_case attributes, mapped to a DynamoDB item with serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub aggregate_id: String,
    /// 1, 2, 3 ... gapless per aggregate; the sort key.
    pub version: u64,
    /// A UUIDv7: unique and time-ordered (the seed's `event-${Date.now()}` collided within a millisecond).
    pub event_id: String,
    pub event_type: String,
    pub event_data: Map<String, Value>,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z`; the GSI sort key, so it must sort
    /// lexicographically in time order, which the fixed format guarantees.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    /// The aggregate type (a name in the registry). Absent on events written before types were recorded:
    /// their event type names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_type: Option<String>,
    /// The schema version of `event_data`; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
}

impl StoredEvent {
    /// The schema version `event_data` was written with (1 when not recorded).
    pub fn schema_version(&self) -> u32 {
        self.schema_version.unwrap_or(1)
    }
}

/// Correlation and causation ids carried by every event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}

/// The current time in the stored timestamp format.
pub fn now_timestamp() -> String {
    format_timestamp(Utc::now())
}

/// Formats a time as RFC 3339 UTC with exactly three fractional digits and a `Z`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 time and normalises it to the stored format, so that query bounds compare
/// correctly with stored timestamps (`...:00Z` would otherwise sort after `...:00.000Z`).
pub fn normalize_timestamp(input: &str) -> Result<String, String> {
    DateTime::parse_from_rfc3339(input)
        .map(|t| format_timestamp(t.with_timezone(&Utc)))
        .map_err(|e| {
            format!(
                "`{input}` is not an RFC 3339 timestamp ({e}); use e.g. 2026-01-02T03:04:05.678Z"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let t = now_timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
    }

    #[test]
    fn normalize_makes_bounds_comparable() {
        assert_eq!(
            normalize_timestamp("2026-01-01T01:00:00+01:00").unwrap(),
            "2026-01-01T00:00:00.000Z"
        );
        assert!(normalize_timestamp("yesterday").is_err());
    }
}
