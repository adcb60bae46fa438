//! Participants' endpoints: webhook URLs (or pull) and the channels each takes.

use std::collections::BTreeMap;

use broker_core::model::Endpoint;
use serde::Deserialize;
use serde_json::json;

use super::{Admin, Result, invalid, require};
use crate::rows::{EndpointRow, paginate};
use crate::types::{AppError, ListQuery, Page};

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

impl Admin<'_> {
    /// Endpoints the actor may see.
    pub async fn endpoints(&self, q: &ListQuery) -> Result<Page<EndpointRow>> {
        let all = self.broker.directory().endpoints().await?;
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
        let existing = self.broker.directory().endpoints().await?;
        let id = Endpoint::make_id(&form.dip_id, form.name.trim());
        let before = existing.iter().find(|e| e.id == id).cloned();
        let create = match saving {
            Saving::Create => true,
            Saving::Change => false,
            Saving::Either => before.is_none(),
        };
        let mut errors = BTreeMap::new();
        if !self.participant_exists(&form.dip_id).await? {
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
        let catalogue = self.broker.directory().catalogue().await?;
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
        self.broker.directory().put_endpoint(&endpoint).await?;
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
}
