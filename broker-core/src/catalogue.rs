//! The channel catalogue: the seed data file shipped with the platform, and the compiled
//! form (JSON Schema validators per version) the ingest path uses.

use std::collections::{BTreeMap, HashMap, HashSet};

use include_dir::{Dir, include_dir};
use serde::Deserialize;

use crate::input;
use crate::model::{AlwaysRule, Channel, Role, RoutingMode};

static SEED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/catalogue");

/// A catalogue that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The data file does not parse.
    #[error("catalogue file: {0}")]
    Parse(String),
    /// A schema file named by the catalogue is missing or not JSON.
    #[error("schema {file}: {reason}")]
    Schema {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A channel definition breaks a rule.
    #[error("channel {channel}: {reason}")]
    Channel {
        /// Interface id.
        channel: String,
        /// What is wrong.
        reason: String,
    },
}

/// Roles and channels, as kept in the data file and in the store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueData {
    /// Market roles.
    #[serde(default, rename = "role")]
    pub roles: Vec<Role>,
    /// Channels.
    #[serde(default, rename = "interface")]
    pub channels: Vec<Channel>,
}

impl CatalogueData {
    /// The catalogue shipped with the platform (`broker-core/catalogue/`), schemas inlined.
    pub fn seed() -> Result<Self, CatalogueError> {
        let text = SEED
            .get_file("catalogue.toml")
            .and_then(|f| f.contents_utf8())
            .ok_or_else(|| CatalogueError::Parse("catalogue.toml missing".into()))?;
        Self::parse(text, |file| {
            SEED.get_file(format!("schemas/{file}"))
                .and_then(|f| f.contents_utf8())
                .map(str::to_owned)
        })
    }

    /// Parses a catalogue file, reading schema files through `read_schema`, and checks it.
    pub fn parse(text: &str, read_schema: impl Fn(&str) -> Option<String>) -> Result<Self, CatalogueError> {
        let mut data: Self = toml::from_str(text).map_err(|e| CatalogueError::Parse(e.to_string()))?;
        for channel in &mut data.channels {
            for version in &mut channel.schema {
                if !version.schema.is_null() {
                    continue;
                }
                let file = version.file.clone().ok_or_else(|| CatalogueError::Channel {
                    channel: channel.id.clone(),
                    reason: format!("schema version {} has neither file nor schema", version.version),
                })?;
                let text = read_schema(&file).ok_or_else(|| CatalogueError::Schema {
                    file: file.clone(),
                    reason: "not found".into(),
                })?;
                version.schema = serde_json::from_str(&text).map_err(|e| CatalogueError::Schema {
                    file,
                    reason: e.to_string(),
                })?;
            }
        }
        Compiled::build(&data)?;
        Ok(data)
    }
}

/// A channel with its schema validators compiled.
pub struct CompiledChannel {
    /// The definition.
    pub channel: Channel,
    validators: HashMap<String, jsonschema::Validator>,
}

impl std::fmt::Debug for CompiledChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledChannel")
            .field("channel", &self.channel.id)
            .finish()
    }
}

impl CompiledChannel {
    /// Validates a CustomBlock against schema `version`; `None` when the version is not
    /// accepted, otherwise the violations as (pointer within the CustomBlock, message):
    /// at most [`MAX_VIOLATIONS`], then one that counts the rest. Messages quote the
    /// offending values, and pointers the keys, shortened (`input::echo`).
    pub fn validate(&self, version: &str, custom_block: &serde_json::Value) -> Option<Vec<(String, String)>> {
        let validator = self.validators.get(version)?;
        let mut violations = Vec::new();
        let mut unlisted = 0_usize;
        for e in validator.iter_errors(custom_block) {
            if violations.len() < MAX_VIOLATIONS {
                let path = e.instance_path().to_string();
                violations.push((input::echo_pointer(&path).into_owned(), violation(&e)));
            } else {
                unlisted += 1;
            }
        }
        if unlisted > 0 {
            violations.push((String::new(), format!("{unlisted} more violations not listed")));
        }
        Some(violations)
    }

    /// The schema versions accepted, in catalogue order.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        self.channel.schema.iter().map(|s| s.version.as_str())
    }
}

/// Most schema violations listed for one CustomBlock, so that an answer does not grow
/// with the number of bad values sent.
pub const MAX_VIOLATIONS: usize = 20;

/// A schema violation's message, quoting the offending value (or property names) short:
/// jsonschema's own message quotes the whole value.
fn violation(e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let names = |what: &str, unexpected: &[String]| {
        let mut listed: Vec<String> = unexpected
            .iter()
            .take(3)
            .map(|n| format!("'{}'", input::echo(n)))
            .collect();
        if unexpected.len() > 3 {
            listed.push(format!("{} more", unexpected.len() - 3));
        }
        let verb = if unexpected.len() == 1 { "was" } else { "were" };
        format!(
            "{what} properties are not allowed ({} {verb} unexpected)",
            listed.join(", ")
        )
    };
    match e.kind() {
        Kind::AdditionalProperties { unexpected } => names("Additional", unexpected),
        Kind::UnevaluatedProperties { unexpected } => names("Unevaluated", unexpected),
        // The inner error is about a property name, which it would quote whole.
        Kind::PropertyNames { error } => format!("property name {}", violation(error)),
        _ => e.masked_with(input::echo_value(e.instance())).to_string(),
    }
}

/// Roles and channels ready for the ingest path.
#[derive(Debug, Default)]
pub struct Compiled {
    /// Role code → role.
    pub roles: BTreeMap<String, Role>,
    /// Interface id → channel.
    pub channels: HashMap<String, CompiledChannel>,
}

impl Compiled {
    /// Checks the rules every channel must keep and compiles its schemas.
    pub fn build(data: &CatalogueData) -> Result<Self, CatalogueError> {
        let roles: BTreeMap<String, Role> = data.roles.iter().map(|r| (r.code.clone(), r.clone())).collect();
        let mut channels = HashMap::new();
        for channel in &data.channels {
            check_channel(channel, &roles)?;
            let mut validators = HashMap::new();
            for version in &channel.schema {
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&version.schema)
                    .map_err(|e| CatalogueError::Channel {
                        channel: channel.id.clone(),
                        reason: format!("schema version {}: {e}", version.version),
                    })?;
                validators.insert(version.version.clone(), validator);
            }
            if channels
                .insert(
                    channel.id.clone(),
                    CompiledChannel {
                        channel: channel.clone(),
                        validators,
                    },
                )
                .is_some()
            {
                return Err(CatalogueError::Channel {
                    channel: channel.id.clone(),
                    reason: "defined twice".into(),
                });
            }
        }
        Ok(Self { roles, channels })
    }
}

fn check_channel(c: &Channel, roles: &BTreeMap<String, Role>) -> Result<(), CatalogueError> {
    let fail = |reason: String| {
        Err(CatalogueError::Channel {
            channel: c.id.clone(),
            reason,
        })
    };
    let id_ok = c.id.len() == 6 && c.id.starts_with("IF-") && c.id[3..].bytes().all(|b| b.is_ascii_digit());
    if !id_ok {
        return fail("id must be IF- followed by three digits".into());
    }
    for role in c.sender_roles.iter().chain(&c.recipient_roles).chain(&c.mpan_roles) {
        if !roles.contains_key(role) {
            return fail(format!("unknown role {role}"));
        }
    }
    if c.routing.is_empty() {
        return fail("no routing mode".into());
    }
    if let Some(r) = c.mpan_roles.iter().find(|r| !c.recipient_roles.contains(r)) {
        return fail(format!("MPAN role {r} is not a recipient role"));
    }
    if c.routes_by(RoutingMode::Mpan) == c.mpan_roles.is_empty() {
        return fail("mpan_roles must be given exactly when routing by mpan".into());
    }
    if c.routes_by(RoutingMode::Always) == c.always.is_empty() {
        return fail("always rules must be given exactly when routing always".into());
    }
    for rule in &c.always {
        if let AlwaysRule::Role { role } = rule
            && !c.recipient_roles.contains(role)
        {
            return fail(format!("always role {role} is not a recipient role"));
        }
    }
    for role in c.obfuscation.keys() {
        if !c.recipient_roles.contains(role) {
            return fail(format!("obfuscation for {role}, which is not a recipient role"));
        }
    }
    if !(1..=4).contains(&c.security_category) {
        return fail("security_category must be 1 to 4".into());
    }
    match c.security_pattern {
        0..=2 => {}
        3 => {
            if !c.obfuscation.is_empty() {
                return fail("an end-to-end encrypted channel (pattern 3) cannot obfuscate fields".into());
            }
            let reads_custom = |p: &String| p.starts_with("/CustomBlock");
            let appointment_reads_custom = c.appointment_update.as_ref().is_some_and(|u| {
                reads_custom(&u.role)
                    || reads_custom(&u.effective_from)
                    || u.participant.as_ref().is_some_and(reads_custom)
            });
            if c.applicable_date.as_ref().is_some_and(reads_custom) || appointment_reads_custom {
                return fail("an end-to-end encrypted channel (pattern 3) cannot route by CustomBlock fields".into());
            }
        }
        p => return fail(format!("security pattern {p} does not exist (0 to 3)")),
    }
    let d = &c.delivery;
    if d.retry_initial_ms == 0 || d.retry_max_ms < d.retry_initial_ms || d.stale_after_secs == 0 {
        return fail("delivery: need 0 < retry_initial_ms <= retry_max_ms and stale_after_secs > 0".into());
    }
    if c.schema.is_empty() {
        return fail("no schema version".into());
    }
    let mut seen = HashSet::new();
    for v in &c.schema {
        if v.version.len() != 3 || !v.version.bytes().all(|b| b.is_ascii_digit()) {
            return fail(format!("schema version {:?} is not three digits", v.version));
        }
        if !seen.insert(&v.version) {
            return fail(format!("schema version {} twice", v.version));
        }
    }
    let pointers =
        c.obfuscation
            .values()
            .flatten()
            .chain(c.applicable_date.iter())
            .chain(c.appointment_update.iter().flat_map(|u| {
                [Some(&u.role), u.participant.as_ref(), Some(&u.effective_from)]
                    .into_iter()
                    .flatten()
            }));
    for p in pointers {
        if !p.starts_with('/') {
            return fail(format!("{p:?} is not a JSON pointer"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::violation;

    /// Each message of a schema violated by huge values (and keys) is short and still
    /// says which rule.
    #[test]
    fn violations_quote_values_short() {
        let schema = json!({
            "type": "object",
            "properties": { "a": { "type": "string", "maxLength": 3 }, "b": { "enum": ["X", "Y"] } },
            "propertyNames": { "maxLength": 20 },
            "additionalProperties": false
        });
        let validator = jsonschema::validator_for(&schema).expect("schema");
        let huge = "é".repeat(100_000);
        let instance = json!({ "a": huge, "b": [huge], huge.clone(): 1 });
        let messages: Vec<String> = validator.iter_errors(&instance).map(|e| violation(&e)).collect();
        assert!(messages.iter().all(|m| m.len() < 300), "{messages:?}");
        for rule in [
            "is longer than 3 characters",
            "is not one of \"X\" or \"Y\"",
            "property name",
            "Additional properties are not allowed",
        ] {
            assert!(messages.iter().any(|m| m.contains(rule)), "{rule}: {messages:?}");
        }
    }
}
