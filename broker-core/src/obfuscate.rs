//! Obfuscation by recipient role (spec 5.5.6): fields a role may not see are removed.

use serde_json::Value;

/// What to do at the locations a pointer names.
#[derive(Clone, Copy)]
enum Op<'a> {
    /// Take them out (what a recipient receives).
    Remove,
    /// Put this text in their place (what a viewer is shown).
    Mask(&'a str),
}

/// Removes every location `pointer` names from `value`. A `*` segment matches every
/// element of an array (or every member of an object); absent locations are ignored.
pub fn remove(value: &mut Value, pointer: &str) {
    apply(value, pointer, Op::Remove);
}

/// Replaces the value at every location `pointer` names with `placeholder` (same
/// matching as [`remove`]), so a viewer sees that a field exists but not its value.
pub fn mask(value: &mut Value, pointer: &str, placeholder: &str) {
    apply(value, pointer, Op::Mask(placeholder));
}

fn apply(value: &mut Value, pointer: &str, op: Op<'_>) {
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    if !segments.is_empty() {
        apply_at(value, &segments, op);
    }
}

fn apply_at(value: &mut Value, segments: &[String], op: Op<'_>) {
    let (head, rest) = (&segments[0], &segments[1..]);
    if rest.is_empty() {
        match (value, op) {
            (Value::Object(m), Op::Remove) if head == "*" => m.clear(),
            (Value::Object(m), Op::Mask(text)) if head == "*" => {
                m.values_mut().for_each(|v| *v = Value::String(text.to_owned()));
            }
            (Value::Object(m), Op::Remove) => {
                m.shift_remove(head.as_str());
            }
            (Value::Object(m), Op::Mask(text)) => {
                if let Some(v) = m.get_mut(head.as_str()) {
                    *v = Value::String(text.to_owned());
                }
            }
            (Value::Array(a), Op::Remove) if head == "*" => a.clear(),
            (Value::Array(a), Op::Mask(text)) if head == "*" => {
                a.iter_mut().for_each(|v| *v = Value::String(text.to_owned()));
            }
            (Value::Array(a), op) => {
                if let Ok(i) = head.parse::<usize>()
                    && i < a.len()
                {
                    match op {
                        Op::Remove => {
                            a.remove(i);
                        }
                        Op::Mask(text) => a[i] = Value::String(text.to_owned()),
                    }
                }
            }
            _ => {}
        }
        return;
    }
    match value {
        Value::Object(m) if head == "*" => m.values_mut().for_each(|v| apply_at(v, rest, op)),
        Value::Object(m) => {
            if let Some(v) = m.get_mut(head.as_str()) {
                apply_at(v, rest, op);
            }
        }
        Value::Array(a) if head == "*" => a.iter_mut().for_each(|v| apply_at(v, rest, op)),
        Value::Array(a) => {
            if let Some(v) = head.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                apply_at(v, rest, op);
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
    fn masks_values_in_place() {
        let mut v =
            json!({"CustomBlock": {"a": 1, "b": 2, "list": [{"x": 1, "y": 2}, {"x": 3, "y": 4}], "all": [5, 6]}});
        mask(&mut v, "/CustomBlock/a", "hidden");
        mask(&mut v, "/CustomBlock/list/*/y", "hidden");
        mask(&mut v, "/CustomBlock/all/*", "hidden");
        mask(&mut v, "/CustomBlock/absent/deeper", "hidden");
        assert_eq!(
            v,
            json!({"CustomBlock": {"a": "hidden", "b": 2, "list": [{"x": 1, "y": "hidden"}, {"x": 3, "y": "hidden"}], "all": ["hidden", "hidden"]}})
        );
    }

    #[test]
    fn escaped_segments() {
        let mut v = json!({"a/b": 1, "c~d": 2, "e": 3});
        remove(&mut v, "/a~1b");
        remove(&mut v, "/c~0d");
        assert_eq!(v, json!({"e": 3}));
    }
}
