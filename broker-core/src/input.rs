//! Participants' input as the API speaks of it. An error message that quotes a bad value
//! quotes at most [`ECHO_CHARS`] characters of it: quoting it whole would let a 15 MiB
//! value make a 15 MiB answer (and fill logs and the caller's error handling with it).

use std::borrow::Cow;
use std::io;

use serde_json::Value;

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
