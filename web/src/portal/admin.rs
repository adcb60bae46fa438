//! Administrative actions, shared by the portal's pages and the admin REST API: each
//! checks the actor's rights on the server, validates, changes the store (the directory
//! notifies every node, so changes apply without a restart) and appends to the audit log.

use std::collections::BTreeMap;

use broker_core::Broker;
use broker_core::catalogue::{CatalogueData, Compiled};
use broker_core::model::{AlwaysRule, Channel, Endpoint, Participant, ParticipantKind, RoutingMode};
use broker_core::store::{AuditEntry, AuditFilter, Store, UserRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::accounts::{check_password, generate_password, hash_password, unavailable};
use crate::app::rows::*;
use crate::app::types::{Actor, AppError, ListQuery, PAGE_SIZE, Page, PortalRole};

type Result<T> = std::result::Result<T, AppError>;

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn now() -> i64 {
    broker_core::clock::now_micros()
}

/// A new user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Sign-in name.
    pub username: String,
    /// Name.
    pub display_name: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Participant; empty or absent for operator staff.
    #[serde(default)]
    pub dip_id: Option<String>,
    /// Role codes.
    pub roles: Vec<String>,
    /// Initial password.
    pub password: String,
}

/// Changes to a user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// Name.
    pub display_name: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Role codes.
    pub roles: Vec<String>,
}

/// A participant to create or save.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantForm {
    /// DIP ID.
    pub dip_id: String,
    /// MPID.
    pub mpid: String,
    /// Name.
    pub name: String,
    /// `participant` or `dcp`.
    pub kind: String,
    /// Market role codes.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Nominated DCPs.
    #[serde(default)]
    pub nominated_dcps: Vec<String>,
    /// Active.
    pub active: bool,
    /// Signatures required.
    #[serde(default)]
    pub signatures_required: bool,
}

/// An endpoint to create or save.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointForm {
    /// Owner.
    pub dip_id: String,
    /// Name.
    pub name: String,
    /// Webhook URL; empty for pull.
    #[serde(default)]
    pub url: String,
    /// Channels.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// What saving an endpoint may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saving {
    /// Create it; refused when it exists.
    Create,
    /// Change it; not found when it does not exist.
    Change,
    /// Create it or change it, whichever applies.
    Either,
}

/// The admin actions of one actor.
pub struct Admin<'a> {
    broker: &'a Broker,
    actor: &'a Actor,
}

fn require(ok: bool) -> Result<()> {
    if ok { Ok(()) } else { Err(AppError::Forbidden) }
}

fn invalid(errors: BTreeMap<String, String>, values: BTreeMap<String, String>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(AppError::Invalid {
        message: "Please correct the marked fields.".into(),
        fields: errors,
        values,
    })
}

fn user_row(u: &UserRecord) -> UserRow {
    UserRow {
        id: u.id.clone(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        email: u.email.clone(),
        dip_id: u.dip_id.clone(),
        roles: u.roles.clone(),
        disabled: u.disabled,
        last_sign_in: u.last_sign_in_at.map(rfc3339),
    }
}

fn participant_row(p: &Participant) -> ParticipantRow {
    ParticipantRow {
        dip_id: p.dip_id.clone(),
        mpid: p.mpid.clone(),
        name: p.name.clone(),
        kind: p.kind.as_str().to_owned(),
        roles: p.roles.clone(),
        nominated_dcps: p.nominated_dcps.clone(),
        active: p.active,
        signatures_required: p.signatures_required,
    }
}

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

fn certificate_row(c: &broker_core::store::CertificateRecord, now: i64) -> CertificateRow {
    CertificateRow {
        fingerprint: c.fingerprint.clone(),
        dip_id: c.dip_id.clone(),
        subject: c.subject.clone(),
        not_after: rfc3339(c.not_after),
        status: broker_core::security::certs::status(c, now, 30).to_owned(),
        environment: c.environment.clone(),
    }
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

fn is_dip_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

impl<'a> Admin<'a> {
    /// The actions `actor` may take on `broker`.
    pub fn new(broker: &'a Broker, actor: &'a Actor) -> Self {
        Self { broker, actor }
    }

    fn store(&self) -> &dyn Store {
        self.broker.store().as_ref()
    }

    async fn audit(&self, action: &str, target: &str, detail: Value) -> Result<()> {
        let entry = AuditEntry::now(
            self.actor.name.clone(),
            self.actor.dip_id.clone(),
            action,
            target,
            &detail,
        );
        self.store().append_audit(&entry).await.map_err(unavailable)
    }

    /// Waits until this node's registry has the latest directory, so that what the admin
    /// changed applies to the next message.
    async fn apply(&self) -> Result<()> {
        self.broker.reload().await.map_err(|e| {
            tracing::error!(error = %e, "registry reload after an admin change");
            AppError::Unavailable
        })
    }

    // ---- users ----

    /// Users the actor may see: all for the platform's readers, else their participant's.
    pub async fn users(&self, q: &ListQuery) -> Result<Page<UserRow>> {
        require(self.actor.sees_users())?;
        let all = self.store().users().await.map_err(unavailable)?;
        let rows: Vec<UserRow> = all
            .iter()
            .filter(|u| self.actor.sees_user(u.dip_id.as_deref()))
            .filter(|u| {
                q.filters
                    .get("dip_id")
                    .is_none_or(|d| u.dip_id.as_deref().unwrap_or("") == d)
            })
            .map(user_row)
            .collect();
        Ok(paginate(
            rows,
            q,
            |u| {
                format!(
                    "{} {} {} {}",
                    u.username,
                    u.display_name,
                    u.email,
                    u.dip_id.as_deref().unwrap_or("")
                )
            },
            |u, col| match col {
                "name" => u.display_name.to_lowercase(),
                "participant" => u.dip_id.clone().unwrap_or_default(),
                "last_sign_in" => u.last_sign_in.clone().unwrap_or_default(),
                _ => u.username.clone(),
            },
        ))
    }

    async fn user_in_scope(&self, id: &str) -> Result<UserRecord> {
        let user = self.store().user(id).await.map_err(unavailable)?;
        match user {
            Some(u) if self.actor.manages_users_of(u.dip_id.as_deref()) => Ok(u),
            Some(u) if self.actor.sees_user(u.dip_id.as_deref()) => Err(AppError::Forbidden),
            _ => Err(AppError::NotFound(format!("user {id}"))),
        }
    }

    /// One user, if in scope.
    pub async fn user(&self, id: &str) -> Result<UserRow> {
        require(self.actor.sees_users())?;
        let user = self.store().user(id).await.map_err(unavailable)?;
        match user {
            Some(u) if self.actor.sees_user(u.dip_id.as_deref()) => Ok(user_row(&u)),
            _ => Err(AppError::NotFound(format!("user {id}"))),
        }
    }

    fn check_roles(&self, dip_id: Option<&str>, roles: &[String], errors: &mut BTreeMap<String, String>) {
        let operator = dip_id.is_none();
        for code in roles {
            match PortalRole::parse(code) {
                None => {
                    errors.insert("roles".into(), format!("No role {code}."));
                }
                Some(r) if !r.allowed_for(operator) => {
                    let whose = if operator {
                        "operator staff"
                    } else {
                        "a participant's users"
                    };
                    errors.insert("roles".into(), format!("{} is not a role for {whose}.", r.label()));
                }
                Some(_) => {}
            }
        }
        if roles.is_empty() {
            errors.insert("roles".into(), "Choose at least one role.".into());
        }
    }

    /// Creates a user (platform admins anywhere; user admins in their participant).
    pub async fn create_user(&self, form: NewUser) -> Result<UserRow> {
        let username = form.username.trim().to_lowercase();
        let dip_id = form
            .dip_id
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        require(self.actor.manages_users_of(dip_id.as_deref()))?;
        let mut errors = BTreeMap::new();
        let name_ok = (3..=64).contains(&username.len())
            && username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
        if !name_ok {
            errors.insert("username".into(), "Use 3–64 letters, digits or . _ - @".into());
        }
        if form.display_name.trim().is_empty() {
            errors.insert("display_name".into(), "Give a name.".into());
        }
        if !form.email.is_empty() && !form.email.contains('@') {
            errors.insert("email".into(), "Not an email address.".into());
        }
        if let Some(d) = &dip_id
            && !self
                .store()
                .participants()
                .await
                .map_err(unavailable)?
                .iter()
                .any(|p| &p.dip_id == d)
        {
            errors.insert("dip_id".into(), format!("No participant {d}."));
        }
        self.check_roles(dip_id.as_deref(), &form.roles, &mut errors);
        if let Err(AppError::Invalid { fields, .. }) = check_password("password", &form.password, &username) {
            errors.extend(fields);
        }
        let values = BTreeMap::from([
            ("username".to_owned(), form.username.clone()),
            ("display_name".to_owned(), form.display_name.clone()),
            ("email".to_owned(), form.email.clone()),
            ("dip_id".to_owned(), dip_id.clone().unwrap_or_default()),
            ("roles".to_owned(), form.roles.join(",")),
        ]);
        invalid(errors, values.clone())?;
        let at = now();
        let user = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            username: username.clone(),
            display_name: form.display_name.trim().to_owned(),
            email: form.email.trim().to_owned(),
            dip_id: dip_id.clone(),
            roles: form.roles.clone(),
            password_hash: hash_password(form.password).await?,
            disabled: false,
            // The administrator knows this password; the user replaces it at first sign-in.
            must_change_password: true,
            failed_sign_ins: 0,
            last_failed_at: None,
            last_sign_in_at: None,
            created_at: at,
            updated_at: at,
        };
        if !self.store().insert_user(&user).await.map_err(unavailable)? {
            return Err(AppError::Invalid {
                message: format!("The username {username} is taken."),
                fields: [("username".to_owned(), "This username is taken.".to_owned())].into(),
                values,
            });
        }
        self.audit(
            "user.create",
            &username,
            json!({"id": user.id, "dipID": dip_id, "roles": user.roles, "displayName": user.display_name}),
        )
        .await?;
        Ok(user_row(&user))
    }

    /// Changes a user's name, email and roles.
    pub async fn update_user(&self, id: &str, change: UserChange) -> Result<UserRow> {
        let mut user = self.user_in_scope(id).await?;
        let mut errors = BTreeMap::new();
        if change.display_name.trim().is_empty() {
            errors.insert("display_name".into(), "Give a name.".into());
        }
        self.check_roles(user.dip_id.as_deref(), &change.roles, &mut errors);
        if self.actor.user_id.as_deref() == Some(id)
            && !change.roles.iter().any(|r| {
                self.actor
                    .roles
                    .iter()
                    .any(|mine| mine.code() == r && matches!(mine, PortalRole::PlatformAdmin | PortalRole::UserAdmin))
            })
        {
            errors.insert("roles".into(), "You cannot remove your own administrator role.".into());
        }
        invalid(
            errors,
            BTreeMap::from([
                ("display_name".to_owned(), change.display_name.clone()),
                ("email".to_owned(), change.email.clone()),
                ("roles".to_owned(), change.roles.join(",")),
            ]),
        )?;
        let before = json!({"roles": user.roles, "displayName": user.display_name, "email": user.email});
        user.display_name = change.display_name.trim().to_owned();
        user.email = change.email.trim().to_owned();
        user.roles = change.roles;
        user.updated_at = now();
        self.store().update_user(&user).await.map_err(unavailable)?;
        self.audit(
            "user.update",
            &user.username,
            json!({"before": before, "after": {"roles": user.roles, "displayName": user.display_name, "email": user.email}}),
        )
        .await?;
        Ok(user_row(&user))
    }

    /// Disables a user (ending every session of theirs at once) or enables them again.
    pub async fn set_user_disabled(&self, id: &str, disabled: bool) -> Result<UserRow> {
        let mut user = self.user_in_scope(id).await?;
        if disabled && self.actor.user_id.as_deref() == Some(id) {
            return Err(AppError::Conflict("You cannot disable yourself.".into()));
        }
        user.disabled = disabled;
        user.updated_at = now();
        self.store().update_user(&user).await.map_err(unavailable)?;
        let ended = if disabled {
            self.store()
                .delete_user_sessions(&user.id, None)
                .await
                .map_err(unavailable)?
        } else {
            0
        };
        let action = if disabled { "user.disable" } else { "user.enable" };
        self.audit(action, &user.username, json!({"sessionsEnded": ended}))
            .await?;
        Ok(user_row(&user))
    }

    /// Sets a new random password (returned once), which the user must change at the
    /// next sign-in, and ends the user's sessions.
    pub async fn reset_password(&self, id: &str) -> Result<String> {
        let mut user = self.user_in_scope(id).await?;
        let password = generate_password();
        user.password_hash = hash_password(password.clone()).await?;
        user.must_change_password = true;
        user.updated_at = now();
        self.store().update_user(&user).await.map_err(unavailable)?;
        let ended = self
            .store()
            .delete_user_sessions(&user.id, None)
            .await
            .map_err(unavailable)?;
        self.audit("user.reset_password", &user.username, json!({"sessionsEnded": ended}))
            .await?;
        Ok(password)
    }

    // ---- participants ----

    /// Participants the actor may see.
    pub async fn participants(&self, q: &ListQuery) -> Result<Page<ParticipantRow>> {
        let all = self.store().participants().await.map_err(unavailable)?;
        let rows: Vec<ParticipantRow> = all
            .iter()
            .filter(|p| self.actor.sees_participant(&p.dip_id))
            .filter(|p| {
                q.filters
                    .get("kind")
                    .is_none_or(|k| k.is_empty() || p.kind.as_str() == k)
            })
            .filter(|p| {
                q.filters
                    .get("role")
                    .is_none_or(|r| r.is_empty() || p.roles.contains(r))
            })
            .map(participant_row)
            .collect();
        Ok(paginate(
            rows,
            q,
            |p| format!("{} {} {} {}", p.dip_id, p.mpid, p.name, p.roles.join(" ")),
            |p, col| match col {
                "mpid" => p.mpid.clone(),
                "name" => p.name.to_lowercase(),
                "kind" => p.kind.clone(),
                _ => p.dip_id.clone(),
            },
        ))
    }

    /// One participant, if the actor may see it.
    pub async fn participant(&self, dip_id: &str) -> Result<ParticipantRow> {
        if !self.actor.sees_participant(dip_id) {
            return Err(AppError::NotFound(format!("participant {dip_id}")));
        }
        let all = self.store().participants().await.map_err(unavailable)?;
        all.iter()
            .find(|p| p.dip_id == dip_id)
            .map(participant_row)
            .ok_or_else(|| AppError::NotFound(format!("participant {dip_id}")))
    }

    /// Creates (`create`) or changes a participant.
    pub async fn save_participant(&self, form: ParticipantForm, create: bool) -> Result<ParticipantRow> {
        require(self.actor.is_platform_admin())?;
        let existing = self.store().participants().await.map_err(unavailable)?;
        let catalogue = self.store().catalogue().await.map_err(unavailable)?;
        let before = existing.iter().find(|p| p.dip_id == form.dip_id);
        let mut errors = BTreeMap::new();
        if !is_dip_id(&form.dip_id) {
            errors.insert("dip_id".into(), "A DIP ID is 10 digits.".into());
        } else if create && before.is_some() {
            errors.insert("dip_id".into(), "This DIP ID exists.".into());
        } else if !create && before.is_none() {
            return Err(AppError::NotFound(format!("participant {}", form.dip_id)));
        }
        if form.dip_id == self.broker.config().platform_dip_id {
            errors.insert("dip_id".into(), "This DIP ID is the platform's own.".into());
        }
        let mpid = form.mpid.trim().to_uppercase();
        if mpid.len() != 4 || !mpid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.insert("mpid".into(), "An MPID is 4 letters or digits.".into());
        }
        if form.name.trim().is_empty() {
            errors.insert("name".into(), "Give the organisation's name.".into());
        }
        let kind = ParticipantKind::parse(&form.kind);
        match kind {
            None => {
                errors.insert("kind".into(), "Choose participant or DCP.".into());
            }
            Some(ParticipantKind::Participant) if form.roles.is_empty() => {
                errors.insert("roles".into(), "A participant holds at least one role.".into());
            }
            Some(ParticipantKind::Dcp) if !form.roles.is_empty() || !form.nominated_dcps.is_empty() => {
                errors.insert("roles".into(), "A DCP holds no roles and nominates no DCP.".into());
            }
            _ => {}
        }
        if let Some(r) = form
            .roles
            .iter()
            .find(|r| !catalogue.roles.iter().any(|m| &m.code == *r))
        {
            errors.insert("roles".into(), format!("No market role {r}."));
        }
        for d in &form.nominated_dcps {
            if !existing
                .iter()
                .any(|p| &p.dip_id == d && p.kind == ParticipantKind::Dcp)
            {
                errors.insert("nominated_dcps".into(), format!("{d} is not a DCP."));
            }
        }
        invalid(
            errors,
            BTreeMap::from([
                ("dip_id".to_owned(), form.dip_id.clone()),
                ("mpid".to_owned(), form.mpid.clone()),
                ("name".to_owned(), form.name.clone()),
                ("kind".to_owned(), form.kind.clone()),
                ("roles".to_owned(), form.roles.join(",")),
                ("nominated_dcps".to_owned(), form.nominated_dcps.join(",")),
            ]),
        )?;
        let participant = Participant {
            dip_id: form.dip_id.clone(),
            mpid,
            name: form.name.trim().to_owned(),
            kind: kind.unwrap_or(ParticipantKind::Participant),
            roles: form.roles,
            nominated_dcps: form.nominated_dcps,
            active: form.active,
            signatures_required: form.signatures_required,
        };
        let before = before.map(participant_row);
        self.store().put_participant(&participant).await.map_err(unavailable)?;
        self.apply().await?;
        let row = participant_row(&participant);
        let action = if create {
            "participant.create"
        } else {
            "participant.update"
        };
        self.audit(action, &row.dip_id, json!({"before": before, "after": row}))
            .await?;
        Ok(row)
    }

    // ---- channels ----

    /// Channels (every signed-in user may read the catalogue).
    pub async fn channels(&self, q: &ListQuery) -> Result<Page<ChannelRow>> {
        let catalogue = self.store().catalogue().await.map_err(unavailable)?;
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
        let catalogue = self.store().catalogue().await.map_err(unavailable)?;
        catalogue
            .channels
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| AppError::NotFound(format!("channel {id}")))
    }

    /// The market roles, for forms.
    pub async fn market_roles(&self) -> Result<Vec<MarketRole>> {
        let catalogue = self.store().catalogue().await.map_err(unavailable)?;
        Ok(market_roles_of(&catalogue))
    }

    /// What the channel editor shows.
    pub async fn channel(&self, id: &str) -> Result<ChannelDetail> {
        let catalogue = self.store().catalogue().await.map_err(unavailable)?;
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
        let catalogue = self.store().catalogue().await.map_err(unavailable)?;
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
        self.store().put_channel(&channel).await.map_err(unavailable)?;
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

    // ---- endpoints ----

    /// Endpoints the actor may see.
    pub async fn endpoints(&self, q: &ListQuery) -> Result<Page<EndpointRow>> {
        let all = self.store().endpoints().await.map_err(unavailable)?;
        let rows = all
            .iter()
            .filter(|e| self.actor.sees_participant(&e.dip_id))
            .map(|e| EndpointRow {
                id: e.id.clone(),
                dip_id: e.dip_id.clone(),
                name: e.name.clone(),
                url: e.url.clone().unwrap_or_default(),
                channels: e.channels.clone(),
            })
            .collect();
        Ok(paginate(
            rows,
            q,
            |e| format!("{} {} {}", e.id, e.url, e.channels.join(" ")),
            |e, col| match col {
                "url" => e.url.clone(),
                _ => e.id.clone(),
            },
        ))
    }

    /// Creates or changes an endpoint; its URL must pass the webhook destination rules.
    pub async fn save_endpoint(&self, form: EndpointForm, saving: Saving) -> Result<EndpointRow> {
        require(self.actor.is_platform_admin())?;
        let existing = self.store().endpoints().await.map_err(unavailable)?;
        let id = Endpoint::make_id(&form.dip_id, form.name.trim());
        let before = existing.iter().find(|e| e.id == id).cloned();
        let create = match saving {
            Saving::Create => true,
            Saving::Change => false,
            Saving::Either => before.is_none(),
        };
        let mut errors = BTreeMap::new();
        if !self
            .store()
            .participants()
            .await
            .map_err(unavailable)?
            .iter()
            .any(|p| p.dip_id == form.dip_id)
        {
            errors.insert("dip_id".into(), format!("No participant {}.", form.dip_id));
        }
        let name = form.name.trim();
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            errors.insert("name".into(), "Use 1–64 letters, digits, - or _.".into());
        }
        if create && before.is_some() {
            errors.insert("name".into(), "This participant has an endpoint of that name.".into());
        }
        if !create && before.is_none() {
            return Err(AppError::NotFound(format!("endpoint {id}")));
        }
        let url = form.url.trim();
        if !url.is_empty() {
            match url::Url::parse(url) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => {
                    errors.insert("url".into(), "Give an http(s) URL, or leave empty for pull.".into());
                }
            }
        }
        let catalogue = self.store().catalogue().await.map_err(unavailable)?;
        if let Some(c) = form
            .channels
            .iter()
            .find(|c| !catalogue.channels.iter().any(|k| &k.id == *c))
        {
            errors.insert("channels".into(), format!("No channel {c}."));
        }
        invalid(
            errors,
            BTreeMap::from([
                ("dip_id".to_owned(), form.dip_id.clone()),
                ("name".to_owned(), form.name.clone()),
                ("url".to_owned(), form.url.clone()),
                ("channels".to_owned(), form.channels.join(",")),
            ]),
        )?;
        let endpoint = Endpoint {
            id: id.clone(),
            dip_id: form.dip_id.clone(),
            name: name.to_owned(),
            url: (!url.is_empty()).then(|| url.to_owned()),
            channels: form.channels,
        };
        self.store().put_endpoint(&endpoint).await.map_err(unavailable)?;
        self.apply().await?;
        let action = if create { "endpoint.create" } else { "endpoint.update" };
        self.audit(action, &id, json!({"before": before, "after": endpoint}))
            .await?;
        Ok(EndpointRow {
            id,
            dip_id: endpoint.dip_id,
            name: endpoint.name,
            url: endpoint.url.unwrap_or_default(),
            channels: endpoint.channels,
        })
    }

    // ---- certificates ----

    /// Certificates the actor may see.
    pub async fn certificates(&self, q: &ListQuery) -> Result<Page<CertificateRow>> {
        let now = now();
        let all = self.store().certificates().await.map_err(unavailable)?;
        let rows = all
            .iter()
            .filter(|c| self.actor.sees_participant(&c.dip_id))
            .map(|c| certificate_row(c, now))
            .filter(|c| q.filters.get("status").is_none_or(|s| s.is_empty() || &c.status == s))
            .collect();
        Ok(paginate(
            rows,
            q,
            |c| format!("{} {} {}", c.fingerprint, c.dip_id, c.subject),
            |c, col| match col {
                "holder" => c.dip_id.clone(),
                "expiry" => c.not_after.clone(),
                "status" => c.status.clone(),
                _ => c.fingerprint.clone(),
            },
        ))
    }

    /// Registers a PEM certificate to a participant.
    pub async fn register_certificate(&self, dip_id: &str, pem: &str) -> Result<CertificateRow> {
        require(self.actor.is_platform_admin())?;
        let values = BTreeMap::from([
            ("dip_id".to_owned(), dip_id.to_owned()),
            ("pem".to_owned(), pem.to_owned()),
        ]);
        if !self
            .store()
            .participants()
            .await
            .map_err(unavailable)?
            .iter()
            .any(|p| p.dip_id == dip_id)
        {
            return Err(AppError::Invalid {
                message: format!("No participant {dip_id}."),
                fields: [("dip_id".to_owned(), format!("No participant {dip_id}."))].into(),
                values,
            });
        }
        let now = now();
        let environment = &self.broker.config().environment;
        let record =
            broker_core::security::certs::record(pem, dip_id, environment, "registered", now).map_err(|e| {
                AppError::Invalid {
                    message: format!("Certificate refused: {e}"),
                    fields: [("pem".to_owned(), e.to_string())].into(),
                    values: values.clone(),
                }
            })?;
        self.store().put_certificate(&record).await.map_err(unavailable)?;
        self.apply().await?;
        self.audit(
            "certificate.register",
            &record.fingerprint,
            json!({"dipID": dip_id, "subject": record.subject, "notAfter": rfc3339(record.not_after)}),
        )
        .await?;
        Ok(certificate_row(&record, now))
    }

    /// Revokes a certificate: refused from the next request on, on open connections too.
    pub async fn revoke_certificate(&self, fingerprint: &str) -> Result<()> {
        require(self.actor.is_platform_admin())?;
        if !self
            .store()
            .revoke_certificate(fingerprint, now())
            .await
            .map_err(unavailable)?
        {
            return Err(AppError::NotFound(format!("certificate {fingerprint}")));
        }
        self.apply().await?;
        self.audit("certificate.revoke", fingerprint, json!({})).await
    }

    // ---- audit ----

    /// A page of the admin audit log: everything for the platform's readers, the entries
    /// of their own participant's users for a participant's user admin or auditor.
    pub async fn audit_log(&self, q: &ListQuery) -> Result<Page<AuditRow>> {
        let actor_dip_id = if self.actor.reads_platform() {
            None
        } else if self.actor.has(PortalRole::UserAdmin) || self.actor.has(PortalRole::Auditor) {
            self.actor.dip_id.clone()
        } else {
            return Err(AppError::Forbidden);
        };
        let page = q.page.max(1);
        let filter = AuditFilter {
            actor: q.filters.get("actor").filter(|s| !s.is_empty()).cloned(),
            action: q.filters.get("action").filter(|s| !s.is_empty()).cloned(),
            target: (!q.q.trim().is_empty()).then(|| q.q.trim().to_owned()),
            actor_dip_id,
            limit: PAGE_SIZE as i64,
            offset: ((page - 1) * PAGE_SIZE) as i64,
        };
        let (entries, total) = self.store().audit_log(&filter).await.map_err(unavailable)?;
        Ok(Page {
            rows: entries
                .into_iter()
                .map(|e| AuditRow {
                    id: e.id,
                    at: rfc3339(e.at),
                    actor: e.actor,
                    action: e.action,
                    target: e.target,
                    detail: e.detail,
                })
                .collect(),
            total: total as usize,
            page,
        })
    }
}
