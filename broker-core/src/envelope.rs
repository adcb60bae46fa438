//! The participant envelope (`WIRE.md`): validation of an item in levels (structure of
//! the CommonBlock, then the CustomBlock against the interface's schema), authorisation of
//! the sender, the canonical form used to tell a retry from a reused reference, and the
//! `D0` transaction wrapper the platform adds to every message it stores (ingested,
//! replayed or returned to sender).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::catalogue::CompiledChannel;
use crate::error::{ApiError, ErrorCode};
use crate::input::echo;
use crate::model::{Principal, RoutingMode};
use crate::mpan::is_valid_mpan_core;
use crate::registry::Registry;

/// Longest accepted `senderUniqueReference`, `senderCorrelationID` and `subText`.
pub const MAX_TEXT: usize = 200;

/// The CommonBlock fields the platform acts on, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// `S0.interfaceID`.
    pub interface_id: String,
    /// `S0.schemaVersion`.
    pub schema_version: String,
    /// `S0.eventCode`, as one or several codes.
    pub event_codes: Vec<String>,
    /// `S1.senderUniqueReference`.
    pub sender_unique_reference: String,
    /// `S1.senderDIPID`.
    pub sender_dip_id: String,
    /// `S1.senderRoleID`.
    pub sender_role: String,
    /// `S1.senderCorrelationID`.
    pub sender_correlation_id: Option<String>,
    /// `S1.DIPConnectionProviderID`.
    pub dcp_dip_id: Option<String>,
    /// `M0.MPANCore`.
    pub mpan: Option<String>,
    /// `A0.primaryRecipients`.
    pub primary_recipients: Vec<String>,
}

/// Whether `text` has the form of a JWE in compact serialisation: five base64url parts,
/// the first a JSON header naming `alg` and `enc`.
pub fn is_jwe_compact(text: &str) -> bool {
    use base64::Engine;
    let parts: Vec<&str> = text.split('.').collect();
    let base64url = |p: &&str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if parts.len() != 5 || !parts.iter().all(base64url) || parts[0].is_empty() || parts[3].is_empty() {
        return false;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .is_some_and(|h| h.get("alg").is_some_and(Value::is_string) && h.get("enc").is_some_and(Value::is_string))
}

/// Pointer prefix of the payload within an item.
pub const PAYLOAD: &str = "/payload";

struct Collector {
    errors: Vec<ApiError>,
}

impl Collector {
    fn push(&mut self, code: ErrorCode, path: &str, message: impl Into<String>) {
        self.errors
            .push(ApiError::new(code, format!("{PAYLOAD}/CommonBlock{path}"), message));
    }

    /// A section object of the CommonBlock (`S0`, `S1`, …); absent optional sections read
    /// as empty.
    fn section<'a>(
        &mut self,
        cb: &'a Map<String, Value>,
        name: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        match cb.get(name) {
            Some(Value::Object(m)) => Some(m),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                self.push(
                    ErrorCode::MissingField,
                    &format!("/{name}"),
                    format!("{name} is required"),
                );
                None
            }
            Some(_) => {
                self.push(
                    ErrorCode::InvalidField,
                    &format!("/{name}"),
                    format!("{name} must be an object"),
                );
                None
            }
        }
    }

    /// A string field; `None` (with an error when required) if absent, null or not a string.
    fn string(
        &mut self,
        section: Option<&Map<String, Value>>,
        sname: &str,
        field: &str,
        required: bool,
    ) -> Option<String> {
        let path = format!("/{sname}/{field}");
        match section.and_then(|s| s.get(field)) {
            Some(Value::String(s)) if s.is_empty() && required => {
                self.push(ErrorCode::MissingField, &path, format!("{field} must not be empty"));
                None
            }
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                if required && section.is_some() {
                    self.push(ErrorCode::MissingField, &path, format!("{field} is required"));
                }
                None
            }
            Some(_) => {
                self.push(ErrorCode::InvalidField, &path, format!("{field} must be a string"));
                None
            }
        }
    }

    fn check(&mut self, ok: bool, code: ErrorCode, path: &str, message: impl Into<String>) -> bool {
        if !ok {
            self.push(code, path, message);
        }
        ok
    }
}

fn is_dip_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Validates an item's structure and CommonBlock, then its CustomBlock against the
/// channel's schema. Returns the checked header, or every error found.
pub fn check_item<'r>(
    item: &Value,
    registry: &'r Registry,
    environment: &str,
) -> Result<(Header, &'r CompiledChannel), Vec<ApiError>> {
    let mut c = Collector { errors: Vec::new() };
    let Some(payload) = item.get("payload") else {
        return Err(vec![ApiError::new(
            ErrorCode::MissingField,
            PAYLOAD,
            "item must have a payload object",
        )]);
    };
    let Some(cb) = payload.get("CommonBlock").and_then(Value::as_object) else {
        let code = if payload.get("CommonBlock").is_some_and(|v| !v.is_null()) {
            ErrorCode::InvalidField
        } else {
            ErrorCode::MissingField
        };
        return Err(vec![ApiError::new(
            code,
            format!("{PAYLOAD}/CommonBlock"),
            "CommonBlock must be an object",
        )]);
    };

    let s0 = c.section(cb, "S0", true);
    let s1 = c.section(cb, "S1", true);
    let m0 = c.section(cb, "M0", false);
    let a0 = c.section(cb, "A0", false);

    let interface_id = c.string(s0, "S0", "interfaceID", true);
    let schema_version = c.string(s0, "S0", "schemaVersion", true);
    let event_codes = match s0.and_then(|s| s.get("eventCode")) {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty())) => {
            a.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        None | Some(Value::Null) if s0.is_some() => {
            c.push(ErrorCode::MissingField, "/S0/eventCode", "eventCode is required");
            vec![]
        }
        None | Some(Value::Null) => vec![],
        Some(_) => {
            c.push(
                ErrorCode::InvalidField,
                "/S0/eventCode",
                "eventCode must be a string or an array of strings",
            );
            vec![]
        }
    };

    let env = c.string(s1, "S1", "environmentTag", true);
    if let Some(env) = &env {
        c.check(
            env == environment,
            ErrorCode::EnvironmentMismatch,
            "/S1/environmentTag",
            format!("this is the {environment} environment, not {}", echo(env)),
        );
    }
    let reference = c.string(s1, "S1", "senderUniqueReference", true);
    if let Some(r) = &reference {
        c.check(
            r.len() <= MAX_TEXT,
            ErrorCode::InvalidField,
            "/S1/senderUniqueReference",
            format!("at most {MAX_TEXT} characters"),
        );
    }
    if let Some(ts) = c.string(s1, "S1", "senderTimestamp", true) {
        c.check(
            chrono::DateTime::parse_from_rfc3339(&ts).is_ok(),
            ErrorCode::InvalidField,
            "/S1/senderTimestamp",
            "senderTimestamp must be an RFC 3339 date-time with offset",
        );
    }
    let sender = c.string(s1, "S1", "senderDIPID", true);
    if let Some(s) = &sender {
        c.check(
            is_dip_id(s),
            ErrorCode::InvalidField,
            "/S1/senderDIPID",
            "a DIP ID is 10 digits",
        );
    }
    let role = c.string(s1, "S1", "senderRoleID", true);
    if let Some(r) = &role {
        c.check(
            registry.catalogue.roles.contains_key(r),
            ErrorCode::InvalidField,
            "/S1/senderRoleID",
            format!("unknown role code {}", echo(r)),
        );
    }
    let correlation = c.string(s1, "S1", "senderCorrelationID", false);
    if let Some(id) = &correlation {
        c.check(
            id.len() <= MAX_TEXT,
            ErrorCode::InvalidField,
            "/S1/senderCorrelationID",
            format!("at most {MAX_TEXT} characters"),
        );
    }
    let dcp = c.string(s1, "S1", "DIPConnectionProviderID", false);
    if let Some(d) = &dcp {
        c.check(
            is_dip_id(d),
            ErrorCode::InvalidField,
            "/S1/DIPConnectionProviderID",
            "a DIP ID is 10 digits",
        );
    }
    if let Some(sub) = c.string(s1, "S1", "subText", false) {
        c.check(
            sub.len() <= MAX_TEXT,
            ErrorCode::InvalidField,
            "/S1/subText",
            format!("at most {MAX_TEXT} characters"),
        );
    }

    let mpan = c.string(m0, "M0", "MPANCore", false);
    if let Some(m) = &mpan {
        c.check(
            is_valid_mpan_core(m),
            ErrorCode::InvalidMpan,
            "/M0/MPANCore",
            "MPANCore must be 13 digits ending in a valid check digit",
        );
    }
    for field in ["distributorDIPID", "GSPGroupID"] {
        c.string(m0, "M0", field, false);
    }

    let mut primary = Vec::new();
    match a0.and_then(|a| a.get("primaryRecipients")) {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                match v.as_str() {
                    Some(s) if is_dip_id(s) => primary.push(s.to_owned()),
                    _ => c.push(
                        ErrorCode::InvalidField,
                        &format!("/A0/primaryRecipients/{i}"),
                        "a DIP ID is 10 digits",
                    ),
                }
            }
        }
        Some(_) => c.push(
            ErrorCode::InvalidField,
            "/A0/primaryRecipients",
            "primaryRecipients must be an array",
        ),
    }

    // The channel, its version and event codes.
    let channel = interface_id.as_deref().and_then(|id| {
        let found = registry.channel(id);
        c.check(
            found.is_some(),
            ErrorCode::UnknownInterface,
            "/S0/interfaceID",
            format!("no channel {}", echo(id)),
        );
        found
    });
    if let Some(ch) = channel {
        let def = &ch.channel;
        if let Some(v) = &schema_version {
            let versions: Vec<&str> = ch.versions().collect();
            c.check(
                versions.contains(&v.as_str()),
                ErrorCode::UnsupportedSchemaVersion,
                "/S0/schemaVersion",
                format!("{} accepts schema versions {}", def.id, versions.join(", ")),
            );
        }
        if !def.event_codes.is_empty() {
            for (i, code) in event_codes.iter().enumerate() {
                let path = if event_codes.len() == 1 {
                    "/S0/eventCode".to_owned()
                } else {
                    format!("/S0/eventCode/{i}")
                };
                let known = def
                    .event_codes
                    .iter()
                    .any(|e| e.trim_matches(['[', ']']) == code.trim_matches(['[', ']']));
                c.check(
                    known,
                    ErrorCode::UnknownEventCode,
                    &path,
                    format!("{} accepts event codes {}", def.id, def.event_codes.join(", ")),
                );
            }
        }
        if def.mpan_required
            && mpan.is_none()
            && m0.is_none_or(|m| !m.contains_key("MPANCore") || m["MPANCore"].is_null())
        {
            c.push(
                ErrorCode::MissingField,
                "/M0/MPANCore",
                format!("{} requires MPANCore", def.id),
            );
        }
        if !primary.is_empty() && !def.routes_by(RoutingMode::Targeted) {
            c.push(
                ErrorCode::TargetingNotAllowed,
                "/A0/primaryRecipients",
                format!("{} does not route to primary recipients", def.id),
            );
        }
    }

    // Level 3: the CustomBlock against the schema, only when the header is sound.
    if c.errors.is_empty()
        && let (Some(ch), Some(version)) = (channel, &schema_version)
    {
        let custom = payload.get("CustomBlock").unwrap_or(&Value::Null);
        if ch.channel.end_to_end() {
            // Opaque to the platform: only its form can be checked.
            if !custom.as_str().is_some_and(is_jwe_compact) {
                c.errors.push(ApiError::new(
                    ErrorCode::SchemaViolation,
                    format!("{PAYLOAD}/CustomBlock"),
                    format!(
                        "{} is end-to-end encrypted: the CustomBlock must be a JWE in compact form",
                        ch.channel.id
                    ),
                ));
            }
        } else {
            for (path, message) in ch.validate(version, custom).unwrap_or_default() {
                c.errors.push(ApiError::new(
                    ErrorCode::SchemaViolation,
                    format!("{PAYLOAD}/CustomBlock{path}"),
                    message,
                ));
            }
        }
    }

    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let (Some(channel), Some(interface_id), Some(schema_version), Some(reference), Some(sender), Some(role)) =
        (channel, interface_id, schema_version, reference, sender, role)
    else {
        return Err(vec![ApiError::new(
            ErrorCode::InvalidField,
            PAYLOAD,
            "incomplete CommonBlock",
        )]);
    };
    Ok((
        Header {
            interface_id,
            schema_version,
            event_codes,
            sender_unique_reference: reference,
            sender_dip_id: sender,
            sender_role: role,
            sender_correlation_id: correlation,
            dcp_dip_id: dcp,
            mpan,
            primary_recipients: primary,
        },
        channel,
    ))
}

/// Checks that `principal` may send this item: it is the sender, or a DCP the sender
/// nominated and named; the sender holds the role; the role may send on the channel.
pub fn authorise(
    principal: &Principal,
    header: &Header,
    channel: &CompiledChannel,
    registry: &Registry,
) -> Vec<ApiError> {
    let s1 = |f: &str| format!("{PAYLOAD}/CommonBlock/S1/{f}");
    let mut errors = Vec::new();
    let caller = principal.dip_id().unwrap_or_default();
    match principal {
        Principal::Participant { .. } => {
            if header.sender_dip_id != caller {
                errors.push(ApiError::new(
                    ErrorCode::SenderMismatch,
                    s1("senderDIPID"),
                    format!("you are {caller}; you cannot send as {}", echo(&header.sender_dip_id)),
                ));
            }
            if let Some(d) = &header.dcp_dip_id {
                errors.push(ApiError::new(
                    ErrorCode::DcpMismatch,
                    s1("DIPConnectionProviderID"),
                    format!(
                        "the message names DCP {} but was sent by the participant itself",
                        echo(d)
                    ),
                ));
            }
        }
        Principal::Dcp { .. } => {
            if !registry.is_nominated(&header.sender_dip_id, caller) {
                errors.push(ApiError::new(
                    ErrorCode::SenderMismatch,
                    s1("senderDIPID"),
                    format!("{} has not nominated DCP {caller}", echo(&header.sender_dip_id)),
                ));
            }
            if header.dcp_dip_id.as_deref() != Some(caller) {
                errors.push(ApiError::new(
                    ErrorCode::DcpMismatch,
                    s1("DIPConnectionProviderID"),
                    format!("must name the connecting DCP {caller}"),
                ));
            }
        }
        Principal::Operator { .. } => {
            errors.push(ApiError::new(
                ErrorCode::SenderMismatch,
                s1("senderDIPID"),
                "operator credentials cannot send messages",
            ));
        }
    }
    let sender = registry.participant(&header.sender_dip_id).filter(|p| p.active);
    match sender {
        Some(p) if p.roles.contains(&header.sender_role) => {}
        _ => errors.push(ApiError::new(
            ErrorCode::RoleNotHeld,
            s1("senderRoleID"),
            format!(
                "{} does not hold role {}",
                echo(&header.sender_dip_id),
                echo(&header.sender_role)
            ),
        )),
    }
    if !channel.channel.sender_roles.contains(&header.sender_role) {
        errors.push(ApiError::new(
            ErrorCode::RoleNotPermitted,
            s1("senderRoleID"),
            format!(
                "role {} may not send on {} (senders: {})",
                echo(&header.sender_role),
                channel.channel.id,
                channel.channel.sender_roles.join(", ")
            ),
        ));
    }
    errors
}

/// SHA-256 (hex) of the payload in canonical form (object keys sorted), so a retry that
/// re-serialises the same content hashes the same.
pub fn content_hash(payload: &Value) -> String {
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(Value::String(k.clone()).to_string().as_bytes());
                    out.push(b':');
                    write(&m[k], out);
                }
                out.push(b'}');
            }
            Value::Array(a) => {
                out.push(b'[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(x, out);
                }
                out.push(b']');
            }
            other => out.extend(other.to_string().as_bytes()),
        }
    }
    let mut bytes = Vec::new();
    write(payload, &mut bytes);
    hex::encode(Sha256::digest(&bytes))
}

/// Resolves a JSON pointer in a payload and reads a date from it: `YYYY-MM-DD`, or the
/// date part of an RFC 3339 date-time in its own offset.
pub fn date_at(payload: &Value, pointer: &str) -> Option<chrono::NaiveDate> {
    let s = payload.pointer(pointer)?.as_str()?;
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.date_naive()))
}

/// The `D0` block the platform adds to a message (`WIRE.md`).
pub(crate) fn transaction_wrapper(
    transaction_id: &str,
    at: chrono::DateTime<chrono::Utc>,
    channel: &crate::model::Channel,
    correlation_id: Option<&str>,
    replay: bool,
    environment: &str,
) -> Value {
    json!({
        "transactionID": transaction_id,
        "transactionTimestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "publicationID": channel.publication_id(),
        "initialCorrelationID": correlation_id,
        "replayIndicator": replay,
        "serviceTicketURL": null,
        "environmentTag": environment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"c":[1,2],"d":"x"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"d":"x","c":[1,2]},"a":1}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"b":{"d":"y","c":[1,2]},"a":1}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
    }

    #[test]
    fn dates() {
        let v: Value = serde_json::json!({"d": "2024-05-01", "t": "2024-05-01T23:30:00+01:00", "x": "nope"});
        assert_eq!(date_at(&v, "/d").unwrap().to_string(), "2024-05-01");
        assert_eq!(date_at(&v, "/t").unwrap().to_string(), "2024-05-01");
        assert!(date_at(&v, "/x").is_none());
        assert!(date_at(&v, "/missing").is_none());
    }
}
