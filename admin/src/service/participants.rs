//! Participants and DCPs: the directory entries, their market roles and nominated DCPs.

use std::collections::BTreeMap;

use broker_core::model::{Participant, ParticipantKind};
use serde::Deserialize;
use serde_json::json;

use super::{Admin, Result, invalid, require};
use crate::rows::{ParticipantRow, paginate};
use crate::types::{AppError, ListQuery, Page};

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

fn is_dip_id(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

impl Admin<'_> {
    /// Participants the actor may see.
    pub async fn participants(&self, q: &ListQuery) -> Result<Page<ParticipantRow>> {
        let all = self.broker.directory().participants().await?;
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
        let all = self.broker.directory().participants().await?;
        all.iter()
            .find(|p| p.dip_id == dip_id)
            .map(participant_row)
            .ok_or_else(|| AppError::NotFound(format!("participant {dip_id}")))
    }

    /// Creates (`create`) or changes a participant.
    pub async fn save_participant(&self, form: ParticipantForm, create: bool) -> Result<ParticipantRow> {
        require(self.actor.is_platform_admin())?;
        let existing = self.broker.directory().participants().await?;
        let catalogue = self.broker.directory().catalogue().await?;
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
        self.broker.directory().put_participant(&participant).await?;
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
}
