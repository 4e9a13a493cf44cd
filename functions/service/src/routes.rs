//! The route table of the HTTP API: which function serves which method + path.
//!
//! The functions must not depend on `stack`, so the table is kept here: the fixed routes, plus one
//! `GET /views/<view>/{key}` per view the domain declares ([`routes`]). A test in
//! `tests/tests/functions_openapi.rs` checks that it, `stack::default_routes()` (derived from the same
//! registry) and `functions/openapi.yaml` list the same routes.

/// Which function binary serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Command,
    Query,
}

/// What a matched route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    AppendEvent,
    AppendToAggregate,
    ListAggregateEvents,
    GetAggregate,
    ListEventsByType,
    Health,
    /// `GET /views/<view>/{key}`: the view is named by the route's path (see [`RouteSpec::view`]).
    ListView,
}

/// One route: `method` + `path` template with `{param}` segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub function: Function,
    pub id: RouteId,
}

impl RouteSpec {
    /// The view a `ListView` route serves (`/views/<view>/{key}`).
    pub fn view(&self) -> Option<&'static str> {
        let rest = self.path.strip_prefix("/views/")?;
        rest.strip_suffix("/{key}")
    }
}

/// Every route of the API: [`ROUTES`] and one `GET /views/<view>/{key}` per view of the domain, built once.
pub fn routes() -> &'static [RouteSpec] {
    static ALL: std::sync::OnceLock<Vec<RouteSpec>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = ROUTES.to_vec();
        for view in domain::registry().views() {
            all.push(RouteSpec {
                method: "GET",
                // Leaked once per process: the route table lives as long as the function.
                path: Box::leak(view_path(&view.name).into_boxed_str()),
                function: Function::Query,
                id: RouteId::ListView,
            });
        }
        all
    })
}

/// The path of a view's route: `/views/<view>/{key}`.
pub fn view_path(view: &str) -> String {
    format!("/views/{view}/{{key}}")
}

/// The fixed routes of the API (the views' routes are added by [`routes`]).
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: "POST",
        path: "/events",
        function: Function::Command,
        id: RouteId::AppendEvent,
    },
    RouteSpec {
        method: "POST",
        path: "/aggregates/{aggregateId}/events",
        function: Function::Command,
        id: RouteId::AppendToAggregate,
    },
    RouteSpec {
        method: "GET",
        path: "/aggregates/{aggregateId}/events",
        function: Function::Query,
        id: RouteId::ListAggregateEvents,
    },
    RouteSpec {
        method: "GET",
        path: "/aggregates/{aggregateId}",
        function: Function::Query,
        id: RouteId::GetAggregate,
    },
    RouteSpec {
        method: "GET",
        path: "/events",
        function: Function::Query,
        id: RouteId::ListEventsByType,
    },
    RouteSpec {
        method: "GET",
        path: "/health",
        function: Function::Query,
        id: RouteId::Health,
    },
];

/// The outcome of matching a request against the routes of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// A route matched; `aggregate_id` is the decoded `{aggregateId}` segment when the template has one.
    Found {
        route: RouteSpec,
        aggregate_id: Option<String>,
    },
    /// The path exists for this function but not with this method.
    MethodNotAllowed {
        allowed: Vec<&'static str>,
    },
    NotFound,
}

/// Matches `method` + `path` (already stripped of any stage prefix) against `function`'s routes.
pub fn match_route(function: Function, method: &str, path: &str) -> RouteMatch {
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let mut allowed = Vec::new();
    for route in routes().iter().filter(|r| r.function == function) {
        if let Some(aggregate_id) = match_path(route.path, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return RouteMatch::Found {
                    route: *route,
                    aggregate_id,
                };
            }
            allowed.push(route.method);
        }
    }
    if allowed.is_empty() {
        RouteMatch::NotFound
    } else {
        RouteMatch::MethodNotAllowed { allowed }
    }
}

/// Returns `Some(param)` when `path` matches `template` (`param` is the decoded `{...}` segment, if any).
fn match_path(template: &str, path: &str) -> Option<Option<String>> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut param = None;
    for (ts, ps) in t.iter().zip(&p) {
        if ts.starts_with('{') {
            if ps.is_empty() {
                return None;
            }
            param = Some(percent_decode(ps));
        } else if ts != ps {
            return None;
        }
    }
    Some(param)
}

/// Decodes `%XX` escapes (the gateway's `rawPath` is not decoded); invalid escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_routes_of_each_function() {
        assert!(matches!(
            match_route(Function::Command, "POST", "/events"),
            RouteMatch::Found { .. }
        ));
        match match_route(Function::Query, "GET", "/aggregates/user%201/events/") {
            RouteMatch::Found {
                route,
                aggregate_id,
            } => {
                assert_eq!(route.id, RouteId::ListAggregateEvents);
                assert_eq!(aggregate_id.as_deref(), Some("user 1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            match_route(Function::Command, "GET", "/events"),
            RouteMatch::MethodNotAllowed {
                allowed: vec!["POST"]
            }
        );
        assert_eq!(
            match_route(Function::Query, "GET", "/nope"),
            RouteMatch::NotFound
        );
        assert_eq!(
            match_route(Function::Query, "GET", "/aggregates//events"),
            RouteMatch::NotFound
        );
    }
}
