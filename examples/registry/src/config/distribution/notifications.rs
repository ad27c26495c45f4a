//! Distribution's `notifications` section: webhook endpoints.

use toml::{Table, Value};

use super::{Node, Reader, boolean, entries, go_duration, header_table, scalar};

pub(super) fn notifications(r: &mut Reader, node: &Node) {
    for e in entries(node) {
        let path = format!("notifications.{}", e.key);
        match (e.key.as_str(), &e.value) {
            ("endpoints", Node::List(list)) => {
                let mut endpoints = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    if let Some(endpoint) = endpoint(r, &format!("{path}[{i}]"), item) {
                        endpoints.push(Value::Table(endpoint));
                    }
                }
                r.put(
                    &path,
                    e.line,
                    "notifications.endpoints",
                    Value::Array(endpoints),
                );
            }
            ("events", _) => r.note(&path, e.line, "events carry no references"),
            _ => r.refuse(&path, e.line, "not supported"),
        }
    }
}

/// One of distribution's notification endpoints as one of ours (`None` when disabled).
fn endpoint(r: &mut Reader, path: &str, node: &Node) -> Option<Table> {
    let mut out = Table::new();
    let mut disabled = false;
    for e in entries(node) {
        let key = format!("{path}.{}", e.key);
        match (e.key.as_str(), &e.value) {
            ("name" | "url", Node::Scalar(v)) => {
                out.insert(e.key.clone(), Value::String(v.clone()));
            }
            ("disabled", _) => disabled = boolean(&e.value) == Some(true),
            ("headers", Node::Map(headers)) => {
                let headers = header_table(headers);
                out.insert("headers".into(), Value::Table(headers));
            }
            ("timeout" | "backoff", Node::Scalar(d)) => match go_duration(d) {
                Some(d) => {
                    let (name, value) = match e.key.as_str() {
                        "timeout" => ("timeout_secs", d.as_secs().max(1) as i64),
                        _ => ("backoff_ms", d.as_millis() as i64),
                    };
                    out.insert(name.into(), Value::Integer(value));
                }
                None => r.refuse(&key, e.line, "not a duration (such as 500ms)"),
            },
            ("threshold", _) => r.note(&key, e.line, "failed posts are retried max_retries times"),
            ("ignoredmediatypes", Node::List(types)) => {
                out.insert("ignore_media_types".into(), strings(types));
            }
            ("ignore", Node::Map(ignore)) => {
                for i in ignore {
                    match (i.key.as_str(), &i.value) {
                        ("mediatypes", Node::List(types)) => {
                            out.insert("ignore_media_types".into(), strings(types));
                        }
                        ("actions", Node::List(actions)) => {
                            out.insert("ignore_actions".into(), strings(actions));
                        }
                        _ => r.refuse(&format!("{key}.{}", i.key), i.line, "not supported"),
                    }
                }
            }
            _ => r.refuse(&key, e.line, "not supported"),
        }
    }
    (!disabled).then_some(out)
}

fn strings(list: &[Node]) -> Value {
    Value::Array(
        list.iter()
            .filter_map(scalar)
            .map(|s| Value::String(s.into()))
            .collect(),
    )
}
