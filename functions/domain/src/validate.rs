//! Validation of identifiers and limits shared by the HTTP layer and the store, so that bad input is
//! refused before anything is written.

/// Longest accepted id (aggregate id, command id, event type), in characters (Unicode scalar values), which
/// is what the OpenAPI document's `maxLength` counts; a byte limit would refuse schema-valid ids of
/// multi-byte characters. In UTF-8 such an id is at most 1,024 bytes, within DynamoDB's key limits
/// (2,048 bytes for a partition key, 1,024 for a sort key).
pub const MAX_ID_CHARS: usize = 256;
/// Most events one append may carry: the TransactWriteItems limit.
pub const MAX_BATCH_EVENTS: usize = 100;
/// DynamoDB's item size limit (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's transaction size limit (4 MB).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest version a request may name (`expectedVersion`, `after`): 2^53 - 1, the largest integer every JSON
/// client reads exactly. The OpenAPI document states the same `maximum`.
pub const MAX_VERSION: u64 = (1 << 53) - 1;
/// Default and maximum page sizes of the list endpoints.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Checks an id: not empty, at most 256 characters, no control characters (the OpenAPI `Id` schema).
pub fn validate_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    let chars = value.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(format!(
            "`{field}` is {chars} characters long; the limit is {MAX_ID_CHARS} characters"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("`{field}` must not contain control characters"));
    }
    Ok(())
}

/// Parses a `limit` query parameter (1..=1000, default 100).
pub fn parse_limit(raw: Option<&str>) -> Result<usize, String> {
    match raw {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!(
                "`limit` must be an integer from 1 to {MAX_PAGE_LIMIT}, got `{s}`"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("aggregateId", "user-1").is_ok());
        assert!(validate_id("aggregateId", "").is_err());
        assert!(validate_id("aggregateId", &"x".repeat(257)).is_err());
        assert!(validate_id("aggregateId", &"x".repeat(256)).is_ok());
        assert!(validate_id("aggregateId", "a\nb").is_err());
        // Characters, not bytes: 256 four-byte characters are an id, 257 are not.
        assert!(validate_id("aggregateId", &"\u{1F600}".repeat(256)).is_ok());
        assert!(validate_id("aggregateId", &"é".repeat(257)).is_err());
        assert!(validate_id("aggregateId", "a\u{85}b").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Ok(100));
        assert_eq!(parse_limit(Some("7")), Ok(7));
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("1001")).is_err());
        assert!(parse_limit(Some("x")).is_err());
    }
}
