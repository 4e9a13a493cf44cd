//! DynamoDB item size accounting, so that events over the 400 KB item limit and batches over the 4 MB
//! transaction limit are refused before anything is sent (instead of a half-understood ValidationException).
//!
//! Follows the documented rules: attribute names count their UTF-8 bytes; strings their UTF-8 bytes; numbers
//! about one byte per two significant digits plus one; maps and lists 3 bytes plus 1 byte per element.

use aws_sdk_dynamodb::types::AttributeValue;
use domain::StoredEvent;
use std::collections::HashMap;

/// The size DynamoDB will account for an event's item.
pub fn event_item_size(event: &StoredEvent) -> usize {
    match serde_dynamo::to_item::<_, HashMap<String, AttributeValue>>(event) {
        Ok(item) => item_size(&item),
        // An event that cannot be encoded cannot be written either; make it fail the size check.
        Err(_) => usize::MAX,
    }
}

/// The size of an item: the sum of its attribute names and values.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}
