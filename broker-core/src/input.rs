//! Participants' input as the API reads it and speaks of it.
//!
//! Every JSON request body is read by [`parse_body`], which refuses the NUL character in
//! any string: PostgreSQL cannot store it in text, SQLite can, and the two stores must
//! answer alike (and never accept a message on one that the other fails on).
//!
//! An error message that quotes a bad value quotes at most [`ECHO_CHARS`] characters of
//! it: quoting it whole would let a 15 MiB value make a 15 MiB answer (and fill logs and
//! the caller's error handling with it).

use std::borrow::Cow;
use std::io;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// Why a JSON request body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body does not parse into what the route takes: the parser's message, with
    /// what it quotes shortened.
    #[error("{0}")]
    Parse(String),
    /// A string (an object key or a value) holds U+0000, at this JSON pointer into the
    /// body.
    #[error("a string holds the NUL character (U+0000), which the platform does not accept")]
    Nul(String),
}

impl BodyError {
    /// The error as the API answers it (with 400): `NUL_CHARACTER` at the string's path,
    /// or `parse_code` with `context` and the parser's message.
    pub fn to_api_error(&self, parse_code: ErrorCode, context: &str) -> ApiError {
        match self {
            Self::Parse(why) => ApiError::new(parse_code, "", format!("{context}: {why}")),
            Self::Nul(path) => ApiError::new(ErrorCode::NulCharacter, path.clone(), self.to_string()),
        }
    }
}

/// Parses a JSON request body into `T`, refusing the NUL character anywhere in it (keys
/// included) before anything reads it.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    if let Some(path) = nul_path(body) {
        return Err(BodyError::Nul(path));
    }
    serde_json::from_slice(body).map_err(|e| BodyError::Parse(json_error(&e)))
}

/// The JSON pointer of the first string (object key or value) of the JSON `body` that
/// holds U+0000; `None` when there is none, or `body` is not JSON.
fn nul_path(body: &[u8]) -> Option<String> {
    // Only the escape puts NUL in a JSON string (raw control characters are not JSON),
    // so a body without it is passed over without being parsed twice.
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut tokens = Vec::new();
    if !holds_nul(&value, &mut tokens) {
        return None;
    }
    let pointer: String = tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect();
    Some(echo_pointer(&pointer).into_owned())
}

/// Whether `value` holds NUL in a string; `tokens` is then the way to it.
fn holds_nul(value: &Value, tokens: &mut Vec<String>) -> bool {
    let mut inside = |token: String, child: &Value, key_has_nul: bool| {
        tokens.push(token);
        if key_has_nul || holds_nul(child, tokens) {
            return true;
        }
        tokens.pop();
        false
    };
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, v)| inside(i.to_string(), v, false)),
        Value::Object(members) => members.iter().any(|(k, v)| inside(k.clone(), v, k.contains('\0'))),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Most characters of an input value an error message quotes.
pub const ECHO_CHARS: usize = 64;

/// Most characters of a JSON parser's message, which is the parser's text around the
/// (already shortened) input it quotes.
const PARSER_MESSAGE_CHARS: usize = 320;

/// `text` as an error message may quote it: its first [`ECHO_CHARS`] characters, and `…`
/// when there were more. Cut on a character boundary.
pub fn echo(text: &str) -> Cow<'_, str> {
    shorten(text, ECHO_CHARS)
}

/// A JSON value as an error message may quote it: its JSON text, shortened like
/// [`echo`]. Only as much of the value as that needs is serialised.
pub fn echo_value(value: &Value) -> String {
    /// Takes bytes up to a bound, then refuses, which stops the serialiser early.
    struct Bounded(Vec<u8>);
    impl io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = BOUND.saturating_sub(self.0.len());
            if room == 0 {
                return Err(io::Error::other("long enough"));
            }
            let n = buf.len().min(room);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    // A character takes at most 4 bytes: this holds more than ECHO_CHARS whole
    // characters, so a character cut in two at the bound is cut off again below.
    const BOUND: usize = 4 * ECHO_CHARS + 8;
    let mut out = Bounded(Vec::new());
    // An error here only means the bound was reached.
    let _ = serde_json::to_writer(&mut out, value);
    let text = String::from_utf8_lossy(&out.0);
    echo(&text).into_owned()
}

/// A JSON pointer built from input (object keys) with each of its reference tokens
/// shortened like [`echo`]: it still names the place, without quoting a huge key.
pub fn echo_pointer(pointer: &str) -> Cow<'_, str> {
    if pointer.split('/').all(|token| token.chars().nth(ECHO_CHARS).is_none()) {
        return Cow::Borrowed(pointer);
    }
    Cow::Owned(pointer.split('/').map(echo).collect::<Vec<_>>().join("/"))
}

/// A JSON parser error as an answer may show it. serde quotes the input it trips on
/// (`unknown field `…``, `invalid type: string "…"`): each quoted part is shortened like
/// [`echo`], the whole message is bounded, and the position is kept.
pub fn json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = (error.line() > 0).then(|| format!(" at line {} column {}", error.line(), error.column()));
    let message = position.as_deref().and_then(|p| text.strip_suffix(p)).unwrap_or(&text);
    let message = echo_quoted(message);
    format!(
        "{}{}",
        shorten(&message, PARSER_MESSAGE_CHARS),
        position.unwrap_or_default()
    )
}

/// `text` with every part between `"…"` (with backslash escapes) or `` `…` `` shortened
/// like [`echo`]: how serde quotes input in its messages.
fn echo_quoted(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = if rest.as_bytes()[open] == b'"' { '"' } else { '`' };
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        match closing(body, quote) {
            Some(close) => {
                out.push_str(&echo(&body[..close]));
                out.push(quote);
                rest = &body[close + 1..];
            }
            None => {
                out.push_str(&echo(body));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the quote closing a part that starts `body` is (a byte index).
fn closing(body: &str, quote: char) -> Option<usize> {
    if quote == '`' {
        return body.find('`');
    }
    let mut escaped = false;
    for (i, b) in body.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// `text` cut to `max` characters (on a character boundary) with `…` when cut.
fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_found_in_keys_and_values_with_its_pointer() {
        let nul = |body: &str| match parse_body::<Value>(body.as_bytes()) {
            Err(BodyError::Nul(path)) => Some(path),
            Ok(_) => None,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(nul(r#"{"a": [1, {"b/c": "x\u0000"}]}"#).as_deref(), Some("/a/1/b~1c"));
        assert_eq!(nul(r#"[{"k~\u0000": 1}]"#).as_deref(), Some("/0/k~0\u{0}"));
        assert_eq!(nul(r#""\u0000""#).as_deref(), Some(""));
        // An escaped backslash followed by u0000 is no NUL.
        assert_eq!(nul(r#"{"a": "\\u0000"}"#), None);
        assert_eq!(nul(r#"{"a": "\u0001"}"#), None);
        assert!(matches!(
            parse_body::<Value>(b"{\"a\": \"\\u0000"),
            Err(BodyError::Parse(_))
        ));
    }

    #[test]
    fn short_text_is_quoted_whole() {
        assert_eq!(echo("IF-031"), "IF-031");
        let exact = "x".repeat(ECHO_CHARS);
        assert_eq!(echo(&exact), exact);
    }

    #[test]
    fn long_text_is_cut_on_a_character_with_an_ellipsis() {
        let long = "é".repeat(10_000);
        let cut = echo(&long);
        assert_eq!(cut.chars().count(), ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn values_are_serialised_only_as_far_as_needed() {
        assert_eq!(echo_value(&json!("abc")), "\"abc\"");
        assert_eq!(echo_value(&json!(12)), "12");
        let big = json!({ "list": vec!["€"; 1_000_000] });
        let cut = echo_value(&big);
        assert_eq!(cut.chars().count(), ECHO_CHARS + 1, "{cut}");
        assert!(cut.starts_with("{\"list\":[\"€\""), "{cut}");
        let wide = json!("😀".repeat(1000));
        assert_eq!(echo_value(&wide).chars().count(), ECHO_CHARS + 1);
    }

    #[test]
    fn pointers_keep_their_shape() {
        assert_eq!(echo_pointer("/payload/CustomBlock/a~1b"), "/payload/CustomBlock/a~1b");
        let long = format!("/payload/{}/x", "k".repeat(1000));
        let cut = echo_pointer(&long);
        assert!(cut.starts_with("/payload/kkk") && cut.ends_with("…/x"), "{cut}");
        assert!(cut.len() < 100);
    }

    #[test]
    fn parser_messages_quote_input_short_and_keep_the_position() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Request {
            flag: Option<bool>,
        }
        let huge = "z".repeat(100_000);
        let e = serde_json::from_str::<Request>(&format!("{{\"flag\": \"{huge}\"}}")).unwrap_err();
        let m = json_error(&e);
        assert!(m.len() < 200, "{m}");
        assert!(
            m.starts_with("invalid type: string \"zzz") && m.contains("…\", expected a boolean at line 1"),
            "{m}"
        );
        let e = serde_json::from_str::<Request>(&format!("{{\"{huge}\": 1}}")).unwrap_err();
        let m = json_error(&e);
        assert!(
            m.len() < 200 && m.starts_with("unknown field `zzz") && m.contains("expected `flag`"),
            "{m}"
        );
        let e = serde_json::from_str::<Request>("{\"flag\": tru").unwrap_err();
        assert_eq!(json_error(&e), e.to_string());
    }
}
