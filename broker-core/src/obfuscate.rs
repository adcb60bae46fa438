//! Obfuscation by recipient role (spec 5.5.6): fields a role may not see are removed.

use serde_json::Value;

/// Removes every location `pointer` names from `value`. A `*` segment matches every
/// element of an array (or every member of an object); absent locations are ignored.
pub fn remove(value: &mut Value, pointer: &str) {
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    if !segments.is_empty() {
        remove_at(value, &segments);
    }
}

fn remove_at(value: &mut Value, segments: &[String]) {
    let (head, rest) = (&segments[0], &segments[1..]);
    if rest.is_empty() {
        match value {
            Value::Object(m) if head == "*" => m.clear(),
            Value::Object(m) => {
                m.shift_remove(head.as_str());
            }
            Value::Array(a) if head == "*" => a.clear(),
            Value::Array(a) => {
                if let Ok(i) = head.parse::<usize>()
                    && i < a.len()
                {
                    a.remove(i);
                }
            }
            _ => {}
        }
        return;
    }
    match value {
        Value::Object(m) if head == "*" => m.values_mut().for_each(|v| remove_at(v, rest)),
        Value::Object(m) => {
            if let Some(v) = m.get_mut(head.as_str()) {
                remove_at(v, rest);
            }
        }
        Value::Array(a) if head == "*" => a.iter_mut().for_each(|v| remove_at(v, rest)),
        Value::Array(a) => {
            if let Some(v) = head.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                remove_at(v, rest);
            }
        }
        _ => {}
    }
}

/// A copy of `payload` with every pointer of `hidden` removed.
pub fn redact(payload: &Value, hidden: &[String]) -> Value {
    let mut out = payload.clone();
    for p in hidden {
        remove(&mut out, p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removes_fields_and_wildcards() {
        let mut v = json!({"CustomBlock": {"a": 1, "b": 2, "list": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}});
        remove(&mut v, "/CustomBlock/a");
        remove(&mut v, "/CustomBlock/list/*/y");
        remove(&mut v, "/CustomBlock/absent/deeper");
        assert_eq!(v, json!({"CustomBlock": {"b": 2, "list": [{"x": 1}, {"x": 3}]}}));
    }

    #[test]
    fn escaped_segments() {
        let mut v = json!({"a/b": 1, "c~d": 2, "e": 3});
        remove(&mut v, "/a~1b");
        remove(&mut v, "/c~0d");
        assert_eq!(v, json!({"e": 3}));
    }
}
