//! Validation of identifiers and limits shared by the HTTP layer and the store, so that bad input is
//! refused before anything is written.

use serde_json::{Map, Value};

/// Longest accepted id (aggregate id, command id, event type), in characters (Unicode scalar values), which
/// is what the OpenAPI document's `maxLength` counts; a byte limit would refuse schema-valid ids of
/// multi-byte characters. In UTF-8 such an id is at most 1,024 bytes, within DynamoDB's key limits
/// (2,048 bytes for a partition key, 1,024 for a sort key).
pub const MAX_ID_CHARS: usize = 256;
/// Most events one append may carry: TransactWriteItems takes 100 items, and an append also writes the
/// aggregate's head item and, with a `commandId`, its command record (98 + 2 = 100).
pub const MAX_BATCH_EVENTS: usize = 98;
/// DynamoDB's item size limit (400 KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's transaction size limit (4 MB).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest version a request may name (`expectedVersion`, `after`): 2^53 - 1, the largest integer every JSON
/// client reads exactly. The OpenAPI document states the same `maximum`.
pub const MAX_VERSION: u64 = (1 << 53) - 1;
/// DynamoDB's number range: a number in an item is 0 or has a magnitude from 1e-130 up to (not including)
/// 1e126; anything else is a `ValidationException` at write time, so it is refused before.
pub const MIN_NUMBER_MAGNITUDE: f64 = 1e-130;
pub const MAX_NUMBER_MAGNITUDE: f64 = 1e126;
/// DynamoDB's nesting limit (32 levels); `eventData` itself is the first level.
pub const MAX_DATA_DEPTH: usize = 32;
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

/// Checks that DynamoDB can store an event's data as it is (the OpenAPI `EventData` schema): every number is
/// 0 or within [`MIN_NUMBER_MAGNITUDE`, `MAX_NUMBER_MAGNITUDE`), no object has an empty key, and it nests at
/// most [`MAX_DATA_DEPTH`] levels. `field` names the data in the message (`eventData`, `events[3].eventData`).
pub fn validate_event_data(field: &str, data: &Map<String, Value>) -> Result<(), String> {
    fn walk(path: &mut String, value: &Value, depth: usize) -> Result<(), String> {
        let children: Box<dyn Iterator<Item = (String, &Value)>> = match value {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0).abs();
                if x != 0.0 && !(MIN_NUMBER_MAGNITUDE..MAX_NUMBER_MAGNITUDE).contains(&x) {
                    return Err(format!(
                        "`{path}` is {n}, which DynamoDB cannot store: a number must be 0 or have a magnitude from 1e-130 up to 1e126"
                    ));
                }
                return Ok(());
            }
            Value::Array(items) => {
                Box::new(items.iter().enumerate().map(|(i, v)| (format!("[{i}]"), v)))
            }
            Value::Object(map) => {
                if map.contains_key("") {
                    return Err(empty_key(path));
                }
                Box::new(map.iter().map(|(k, v)| (format!(".{k}"), v)))
            }
            _ => return Ok(()),
        };
        if depth > MAX_DATA_DEPTH {
            return Err(format!(
                "`{path}` nests deeper than {MAX_DATA_DEPTH} levels, which DynamoDB cannot store"
            ));
        }
        for (step, child) in children {
            let len = path.len();
            path.push_str(&step);
            walk(path, child, depth + 1)?;
            path.truncate(len);
        }
        Ok(())
    }
    // DynamoDB's attribute names, map keys included, are at least one character long (the local emulator
    // even stores an empty key's value in its parent map, corrupting the item).
    fn empty_key(path: &str) -> String {
        format!(
            "`{path}` has an empty key, which DynamoDB cannot store: keys are at least one character long"
        )
    }
    if data.contains_key("") {
        return Err(empty_key(field));
    }
    let mut path = field.to_string();
    for (key, value) in data {
        path.push('.');
        path.push_str(key);
        walk(&mut path, value, 2)?;
        path.truncate(field.len());
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
    fn event_data_dynamodb_can_store() {
        let data = |v: Value| v.as_object().unwrap().clone();
        let ok = |v: Value| validate_event_data("eventData", &data(v));
        assert!(
            ok(
                serde_json::json!({"a": 0, "b": -0.0, "c": 1e-130, "d": -9.99e125, "e": [u64::MAX]})
            )
            .is_ok()
        );
        let err = ok(serde_json::json!({"a": {"b": [1, 1.7e-246]}})).unwrap_err();
        assert!(err.contains("`eventData.a.b[1]`"), "{err}");
        assert!(ok(serde_json::json!({"a": 1e126})).is_err());
        assert!(ok(serde_json::json!({"a": -1e200})).is_err());
        assert!(ok(serde_json::json!({"": 1})).is_err());
        let err = ok(serde_json::json!({"a": [{"b": {"": 1}}]})).unwrap_err();
        assert!(err.contains("`eventData.a[0].b` has an empty key"), "{err}");
        // 32 levels, `eventData` included, are stored; 33 are not.
        let nested = |levels: usize| {
            let mut v = Value::Null;
            for _ in 0..levels {
                v = serde_json::json!({ "n": v });
            }
            v
        };
        assert!(ok(nested(32)).is_ok());
        let err = ok(nested(33)).unwrap_err();
        assert!(err.contains("32 levels"), "{err}");
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
