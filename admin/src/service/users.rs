//! Users: the list in the actor's scope, creating, changing, disabling and resetting passwords (operator staff, or a participant's user administrators for their own users).

use std::collections::BTreeMap;

use broker_core::store::UserRecord;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, Result, invalid, now, require, rfc3339};
use crate::accounts::{check_password, generate_password, hash_password};
use crate::rows::{UserRow, paginate};
use crate::types::{AppError, ListQuery, Page, PortalRole};

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

impl Admin<'_> {
    /// Users the actor may see: all for the platform's readers, else their participant's.
    pub async fn users(&self, q: &ListQuery) -> Result<Page<UserRow>> {
        require(self.actor.sees_users())?;
        let all = self.broker.accounts().users().await?;
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
        let user = self.broker.accounts().user(id).await?;
        match user {
            Some(u) if self.actor.manages_users_of(u.dip_id.as_deref()) => Ok(u),
            Some(u) if self.actor.sees_user(u.dip_id.as_deref()) => Err(AppError::Forbidden),
            _ => Err(AppError::NotFound(format!("user {id}"))),
        }
    }

    /// One user, if in scope.
    pub async fn user(&self, id: &str) -> Result<UserRow> {
        require(self.actor.sees_users())?;
        let user = self.broker.accounts().user(id).await?;
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
            && !self.participant_exists(d).await?
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
        if !self.broker.accounts().insert_user(&user).await? {
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
        self.broker.accounts().update_user(&user).await?;
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
        self.broker.accounts().update_user(&user).await?;
        let ended = if disabled {
            self.broker.accounts().delete_user_sessions(&user.id, None).await?
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
        self.broker.accounts().update_user(&user).await?;
        let ended = self.broker.accounts().delete_user_sessions(&user.id, None).await?;
        self.audit("user.reset_password", &user.username, json!({"sessionsEnded": ended}))
            .await?;
        Ok(password)
    }
}
