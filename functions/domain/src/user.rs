//! The example aggregate: the seed article's user.
//!
//! The state shape follows the seed's `replayEvents`: `{}` before anything happened, then
//! `{"user": {...}}` where `user_created` sets the user and `user_updated` merges fields into it. The seed
//! has no delete; we add `user_deleted`, which keeps the last known user and sets `"deleted": true`.

use serde_json::{Map, Value};

use crate::aggregate::{Aggregate, DomainError};

pub const USER_CREATED: &str = "user_created";
pub const USER_UPDATED: &str = "user_updated";
pub const USER_DELETED: &str = "user_deleted";

/// The user aggregate's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    /// `None` until `user_created`.
    pub user: Option<Map<String, Value>>,
    pub deleted: bool,
}

/// The user's events, parsed from the stored `event_type` + `event_data`.
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    Created(Map<String, Value>),
    Updated(Map<String, Value>),
    Deleted,
}

impl Aggregate for User {
    type Event = UserEvent;
    const KNOWN_EVENT_TYPES: &'static [&'static str] = &[USER_CREATED, USER_UPDATED, USER_DELETED];

    fn parse_event(event_type: &str, data: &Map<String, Value>) -> Result<UserEvent, DomainError> {
        match event_type {
            USER_CREATED => Ok(UserEvent::Created(data.clone())),
            USER_UPDATED => Ok(UserEvent::Updated(data.clone())),
            USER_DELETED => Ok(UserEvent::Deleted),
            other => Err(DomainError::UnknownEventType {
                event_type: other.to_string(),
                known: Self::KNOWN_EVENT_TYPES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            }),
        }
    }

    fn check(&self, event: &UserEvent) -> Result<(), DomainError> {
        if self.deleted {
            return Err(DomainError::RuleViolation(
                "the user was deleted; no further events are accepted".into(),
            ));
        }
        match event {
            UserEvent::Created(_) if self.user.is_some() => Err(DomainError::RuleViolation(
                "user_created must be the first event of a user; this user already exists".into(),
            )),
            UserEvent::Updated(_) | UserEvent::Deleted if self.user.is_none() => {
                Err(DomainError::RuleViolation(
                    "the user does not exist; append user_created first".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::Created(data) => self.user = Some(data),
            UserEvent::Updated(data) => {
                // Like the seed's `{ ...state.user, ...event.event_data }`: later fields win.
                let user = self.user.get_or_insert_with(Map::new);
                for (k, v) in data {
                    user.insert(k, v);
                }
            }
            UserEvent::Deleted => self.deleted = true,
        }
    }

    fn state(&self) -> Value {
        let mut state = Map::new();
        if let Some(user) = &self.user {
            state.insert("user".into(), Value::Object(user.clone()));
        }
        if self.deleted {
            state.insert("deleted".into(), Value::Bool(true));
        }
        Value::Object(state)
    }

    fn restore(state: &Value) -> Result<Self, String> {
        let obj = state
            .as_object()
            .ok_or("a user state must be a JSON object")?;
        let user = match obj.get("user") {
            None => None,
            Some(Value::Object(u)) => Some(u.clone()),
            Some(_) => return Err("`user` in a user state must be an object".into()),
        };
        let deleted = match obj.get("deleted") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("`deleted` in a user state must be a boolean".into()),
        };
        Ok(User { user, deleted })
    }
}

#[cfg(test)]
mod tests {
    //! given/when/then: given these events, when this event is appended, then this state or this error.
    use super::*;
    use crate::aggregate::replay;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn given(events: &[(&str, Value)]) -> User {
        let owned: Vec<(String, Map<String, Value>)> = events
            .iter()
            .map(|(t, d)| (t.to_string(), obj(d.clone())))
            .collect();
        replay::<User>(owned.iter().map(|(t, d)| (t.as_str(), d))).expect("given events are valid")
    }

    fn when(mut user: User, event_type: &str, data: Value) -> Result<Value, DomainError> {
        user.step(event_type, &obj(data))?;
        Ok(user.state())
    }

    #[test]
    fn restore_inverts_state() {
        let user = given(&[
            (USER_CREATED, json!({"name": "Ann"})),
            (USER_DELETED, json!({})),
        ]);
        assert_eq!(User::restore(&user.state()), Ok(user));
        assert_eq!(User::restore(&json!({})), Ok(User::default()));
    }

    #[test]
    fn empty_history_has_empty_state() {
        assert_eq!(given(&[]).state(), json!({}));
    }

    #[test]
    fn created_first_sets_the_user() {
        assert_eq!(
            when(given(&[]), USER_CREATED, json!({"name": "Ann"})),
            Ok(json!({"user": {"name": "Ann"}}))
        );
    }

    #[test]
    fn created_twice_is_a_rule_violation() {
        let err = when(
            given(&[(USER_CREATED, json!({"name": "Ann"}))]),
            USER_CREATED,
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err.code(), "rule_violation");
    }

    #[test]
    fn updated_merges_fields() {
        let user = given(&[(USER_CREATED, json!({"name": "Ann", "age": 30}))]);
        assert_eq!(
            when(user, USER_UPDATED, json!({"age": 31, "city": "Oslo"})),
            Ok(json!({"user": {"name": "Ann", "age": 31, "city": "Oslo"}}))
        );
    }

    #[test]
    fn updated_before_created_is_a_rule_violation() {
        assert_eq!(
            when(given(&[]), USER_UPDATED, json!({"a": 1}))
                .unwrap_err()
                .code(),
            "rule_violation"
        );
    }

    #[test]
    fn deleted_before_created_is_a_rule_violation() {
        assert_eq!(
            when(given(&[]), USER_DELETED, json!({}))
                .unwrap_err()
                .code(),
            "rule_violation"
        );
    }

    #[test]
    fn deleted_marks_the_state() {
        let user = given(&[(USER_CREATED, json!({"name": "Ann"}))]);
        assert_eq!(
            when(user, USER_DELETED, json!({})),
            Ok(json!({"user": {"name": "Ann"}, "deleted": true}))
        );
    }

    #[test]
    fn every_event_after_deleted_is_refused() {
        let user = given(&[
            (USER_CREATED, json!({"name": "Ann"})),
            (USER_DELETED, json!({})),
        ]);
        for t in User::KNOWN_EVENT_TYPES {
            assert_eq!(
                when(user.clone(), t, json!({})).unwrap_err().code(),
                "rule_violation",
                "{t}"
            );
        }
    }

    #[test]
    fn unknown_event_type_lists_the_known_ones() {
        let err = when(given(&[]), "user_renamed", json!({})).unwrap_err();
        assert_eq!(err.code(), "unknown_event_type");
        let msg = err.to_string();
        for t in User::KNOWN_EVENT_TYPES {
            assert!(msg.contains(t), "{msg}");
        }
    }
}
