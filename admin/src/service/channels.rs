//! Channels (interfaces IF-xxx and publications PUB-xxx): routing mode, always rules and obfuscation, edited as text and parsed back; new channels from the catalogue's templates.

use std::collections::BTreeMap;

use broker_core::catalogue::{CatalogueData, Compiled};
use broker_core::model::{AlwaysRule, Channel, RoutingMode};
use serde_json::{Value, json};

use super::{Admin, Result, invalid, require};
use crate::rows::{ChannelDetail, ChannelRow, MarketRole, paginate};
use crate::types::{AppError, ListQuery, Page};

fn routing_code(m: RoutingMode) -> &'static str {
    match m {
        RoutingMode::Targeted => "targeted",
        RoutingMode::Mpan => "mpan",
        RoutingMode::Always => "always",
    }
}

/// Parses a routing mode code.
pub fn parse_routing(code: &str) -> Option<RoutingMode> {
    [RoutingMode::Targeted, RoutingMode::Mpan, RoutingMode::Always]
        .into_iter()
        .find(|m| routing_code(*m) == code)
}

fn channel_row(c: &Channel) -> ChannelRow {
    ChannelRow {
        id: c.id.clone(),
        name: c.name.clone(),
        business_process: c.business_process.clone(),
        sender_roles: c.sender_roles.clone(),
        recipient_roles: c.recipient_roles.clone(),
        routing: c.routing.iter().map(|m| routing_code(*m).to_owned()).collect(),
        versions: c.schema.iter().map(|v| v.version.clone()).collect(),
        retention_days: c.retention_days,
    }
}

fn always_text(rule: &AlwaysRule) -> String {
    match rule {
        AlwaysRule::Role { role } => format!("role:{role}"),
        AlwaysRule::Participant { participant } => format!("participant:{participant}"),
    }
}

/// Parses `role:SUP` / `participant:1000000001`.
pub fn parse_always(text: &str) -> Option<AlwaysRule> {
    let (kind, value) = text.trim().split_once(':')?;
    let value = value.trim().to_owned();
    match kind.trim() {
        "role" => Some(AlwaysRule::Role { role: value }),
        "participant" => Some(AlwaysRule::Participant { participant: value }),
        _ => None,
    }
}

/// The obfuscation map as editable text: `ROLE /pointer /pointer` per line.
pub fn obfuscation_text(map: &BTreeMap<String, Vec<String>>) -> String {
    map.iter()
        .map(|(role, ptrs)| format!("{role} {}", ptrs.join(" ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses the obfuscation text.
pub fn parse_obfuscation(text: &str) -> std::result::Result<BTreeMap<String, Vec<String>>, String> {
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let Some(role) = words.next() else { continue };
        let pointers: Vec<String> = words.map(str::to_owned).collect();
        if pointers.is_empty() {
            return Err(format!("line {}: give the role, then one or more JSON pointers", n + 1));
        }
        map.insert(role.to_owned(), pointers);
    }
    Ok(map)
}

fn market_roles_of(catalogue: &CatalogueData) -> Vec<MarketRole> {
    catalogue
        .roles
        .iter()
        .map(|r| MarketRole {
            code: r.code.clone(),
            name: r.name.clone(),
        })
        .collect()
}

impl Admin<'_> {
    /// Channels (every signed-in user may read the catalogue).
    pub async fn channels(&self, q: &ListQuery) -> Result<Page<ChannelRow>> {
        let catalogue = self.broker.directory().catalogue().await?;
        let rows = catalogue
            .channels
            .iter()
            .filter(|c| {
                q.filters
                    .get("role")
                    .is_none_or(|r| r.is_empty() || c.sender_roles.contains(r) || c.recipient_roles.contains(r))
            })
            .map(channel_row)
            .collect();
        Ok(paginate(
            rows,
            q,
            |c| format!("{} {} {}", c.id, c.name, c.business_process),
            |c, col| match col {
                "name" => c.name.to_lowercase(),
                "process" => c.business_process.to_lowercase(),
                _ => c.id.clone(),
            },
        ))
    }

    /// The stored definition of a channel.
    pub async fn channel_definition(&self, id: &str) -> Result<Channel> {
        let catalogue = self.broker.directory().catalogue().await?;
        catalogue
            .channels
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| AppError::NotFound(format!("channel {id}")))
    }

    /// The market roles, for forms.
    pub async fn market_roles(&self) -> Result<Vec<MarketRole>> {
        let catalogue = self.broker.directory().catalogue().await?;
        Ok(market_roles_of(&catalogue))
    }

    /// What the channel editor shows.
    pub async fn channel(&self, id: &str) -> Result<ChannelDetail> {
        let catalogue = self.broker.directory().catalogue().await?;
        let c = catalogue
            .channels
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| AppError::NotFound(format!("channel {id}")))?;
        Ok(ChannelDetail {
            row: channel_row(c),
            description: c.description.clone(),
            mpan_roles: c.mpan_roles.clone(),
            always: c.always.iter().map(always_text).collect(),
            obfuscation: obfuscation_text(&c.obfuscation),
            security_category: c.security_category,
            market_roles: market_roles_of(&catalogue),
        })
    }

    /// Checks a channel against the catalogue's rules (compiling its schemas) and saves
    /// it; the registry of every node reloads, other channels untouched.
    pub async fn save_channel(&self, channel: Channel, create: bool) -> Result<ChannelRow> {
        require(self.actor.is_platform_admin())?;
        let catalogue = self.broker.directory().catalogue().await?;
        let before = catalogue.channels.iter().find(|c| c.id == channel.id).cloned();
        if create && before.is_some() {
            return Err(AppError::field("id", format!("{} exists already.", channel.id)));
        }
        if !create && before.is_none() {
            return Err(AppError::NotFound(format!("channel {}", channel.id)));
        }
        let check = CatalogueData {
            roles: catalogue.roles.clone(),
            channels: vec![channel.clone()],
        };
        if let Err(e) = Compiled::build(&check) {
            return Err(AppError::Invalid {
                message: e.to_string(),
                fields: [("channel".to_owned(), e.to_string())].into(),
                values: BTreeMap::new(),
            });
        }
        self.broker.directory().put_channel(&channel).await?;
        self.apply().await?;
        let action = if create { "channel.create" } else { "channel.update" };
        let strip = |c: &Channel| {
            let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
            // Schemas are large; the audit keeps their versions.
            if let Some(list) = v.get_mut("schema").and_then(Value::as_array_mut) {
                for s in list {
                    if let Some(o) = s.as_object_mut() {
                        o.remove("schema");
                    }
                }
            }
            v
        };
        self.audit(
            action,
            &channel.id,
            json!({"before": before.as_ref().map(strip), "after": strip(&channel)}),
        )
        .await?;
        Ok(channel_row(&channel))
    }

    /// Creates channel `id` as a copy of `template` (its schemas and rules) with a new name.
    pub async fn create_channel_from_template(&self, template: &str, id: &str, name: &str) -> Result<ChannelRow> {
        require(self.actor.is_platform_admin())?;
        let mut channel = self
            .channel_definition(template)
            .await
            .map_err(|_| AppError::field("template", format!("No channel {template} to copy.")))?;
        let id = id.trim().to_uppercase();
        let values = BTreeMap::from([
            ("template".to_owned(), template.to_owned()),
            ("id".to_owned(), id.clone()),
            ("name".to_owned(), name.to_owned()),
        ]);
        let mut errors = BTreeMap::new();
        if !(id.len() == 6 && id.starts_with("IF-") && id[3..].bytes().all(|b| b.is_ascii_digit())) {
            errors.insert("id".to_owned(), "An interface id is IF- and three digits.".to_owned());
        }
        if name.trim().is_empty() {
            errors.insert("name".to_owned(), "Give the channel a name.".to_owned());
        }
        invalid(errors, values.clone())?;
        channel.id = id;
        channel.name = name.trim().to_owned();
        // A copy maintains no appointments: only registration's own channels do that.
        channel.appointment_update = None;
        self.save_channel(channel, true).await.map_err(|e| match e {
            AppError::Invalid { message, fields, .. } => AppError::Invalid {
                message,
                fields,
                values,
            },
            other => other,
        })
    }
}
