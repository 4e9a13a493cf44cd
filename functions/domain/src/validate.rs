//! Validation of identifiers and limits shared by the HTTP layer and the store, so that bad input is
//! refused before anything is written.

/// Longest accepted id (aggregate id, command id, event type), in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Most events one append may carry: TransactWriteItems takes 100 items, and an append also writes the
/// aggregate's head item and, with a `commandId`, its command record (98 + 2 = 100).
pub const MAX_BATCH_EVENTS: usize = 98;
/// DynamoDB's item size limit (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's transaction size limit (4 MB).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Default and maximum page sizes of the list endpoints.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Checks an id: not empty, at most 256 bytes, no control characters.
pub fn validate_id(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(format!(
            "`{field}` is {} bytes long; the limit is {MAX_ID_BYTES} bytes",
            value.len()
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
