//! The admin REST API: every action of the admin portal, for scripts. Callers present
//! an operator API key (acting as platform administrator, recorded as `api:<key name>`)
//! or the portal's session cookie (acting as that user, with their rights).

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use broker_core::Broker;
use broker_core::model::Channel;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::SessionPolicy;
use crate::caller::{ApiActor, ApiFailure, ApiResult};
use crate::service::{Admin, EndpointForm, NewUser, ParticipantForm, Saving, UserChange};
use crate::types::{Actor, AppError, ListQuery};

/// Routes under `/api/v1/admin/`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Broker: FromRef<S>,
    SessionPolicy: FromRef<S>,
{
    Router::new()
        .route("/api/v1/admin/users", get(users).post(create_user))
        .route("/api/v1/admin/users/{id}", get(user).put(update_user))
        .route("/api/v1/admin/users/{id}/disable", post(disable_user))
        .route("/api/v1/admin/users/{id}/enable", post(enable_user))
        .route("/api/v1/admin/users/{id}/reset-password", post(reset_password))
        .route("/api/v1/admin/participants", get(participants).post(create_participant))
        .route(
            "/api/v1/admin/participants/{dip_id}",
            get(participant).put(update_participant),
        )
        .route("/api/v1/admin/channels", get(channels).post(create_channel))
        .route("/api/v1/admin/channels/{id}", get(channel).put(update_channel))
        .route("/api/v1/admin/endpoints", get(endpoints).post(create_endpoint))
        .route(
            "/api/v1/admin/endpoints/{dip_id}/{name}",
            axum::routing::put(update_endpoint),
        )
        .route("/api/v1/admin/audit", get(audit))
}

/// Query of list endpoints: `q`, `sort`, `dir`, `page` and the table's filters (the
/// portal's table URLs, so an API list and a page take the same query).
#[derive(Deserialize)]
pub struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    page: usize,
    #[serde(flatten)]
    filters: std::collections::BTreeMap<String, String>,
}

impl From<ListParams> for ListQuery {
    fn from(p: ListParams) -> Self {
        ListQuery {
            q: p.q,
            sort: p.sort,
            desc: p.dir == "desc",
            page: p.page.max(1),
            filters: p.filters,
        }
    }
}

/// Refuses non-administrators before their request body is even read.
fn platform_admin(actor: &Actor) -> Result<(), ApiFailure> {
    if actor.is_platform_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden.into())
    }
}

/// The platform's readers only (administrators and operator auditors).
fn platform_reader(actor: &Actor) -> Result<(), ApiFailure> {
    if actor.reads_platform() {
        Ok(())
    } else {
        Err(AppError::Forbidden.into())
    }
}

fn body<T: serde::de::DeserializeOwned>(
    json: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiFailure> {
    json.map(|Json(v)| v)
        .map_err(|e| ApiFailure(AppError::Request(e.body_text())))
}

async fn users(State(broker): State<Broker>, ApiActor(a): ApiActor, Query(q): Query<ListParams>) -> ApiResult<Value> {
    Ok(Json(json!(Admin::new(&broker, &a).users(&q.into()).await?)))
}

async fn user(State(broker): State<Broker>, ApiActor(a): ApiActor, Path(id): Path<String>) -> ApiResult<Value> {
    Ok(Json(json!(Admin::new(&broker, &a).user(&id).await?)))
}

async fn create_user(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    json: Result<Json<NewUser>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiFailure> {
    let row = Admin::new(&broker, &a).create_user(body(json)?).await?;
    Ok((StatusCode::CREATED, Json(json!(row))))
}

async fn update_user(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Path(id): Path<String>,
    json: Result<Json<UserChange>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Value> {
    Ok(Json(json!(
        Admin::new(&broker, &a).update_user(&id, body(json)?).await?
    )))
}

async fn disable_user(State(broker): State<Broker>, ApiActor(a): ApiActor, Path(id): Path<String>) -> ApiResult<Value> {
    Ok(Json(json!(Admin::new(&broker, &a).set_user_disabled(&id, true).await?)))
}

async fn enable_user(State(broker): State<Broker>, ApiActor(a): ApiActor, Path(id): Path<String>) -> ApiResult<Value> {
    Ok(Json(json!(
        Admin::new(&broker, &a).set_user_disabled(&id, false).await?
    )))
}

async fn reset_password(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Path(id): Path<String>,
) -> ApiResult<Value> {
    let password = Admin::new(&broker, &a).reset_password(&id).await?;
    Ok(Json(json!({"temporaryPassword": password})))
}

async fn participants(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Query(q): Query<ListParams>,
) -> ApiResult<Value> {
    platform_reader(&a)?;
    Ok(Json(json!(Admin::new(&broker, &a).participants(&q.into()).await?)))
}

async fn participant(State(broker): State<Broker>, ApiActor(a): ApiActor, Path(dip): Path<String>) -> ApiResult<Value> {
    platform_reader(&a)?;
    Ok(Json(json!(Admin::new(&broker, &a).participant(&dip).await?)))
}

async fn create_participant(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    json: Result<Json<ParticipantForm>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiFailure> {
    platform_admin(&a)?;
    let row = Admin::new(&broker, &a).save_participant(body(json)?, true).await?;
    Ok((StatusCode::CREATED, Json(json!(row))))
}

async fn update_participant(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Path(dip): Path<String>,
    json: Result<Json<ParticipantForm>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Value> {
    platform_admin(&a)?;
    let form = body(json)?;
    if form.dip_id != dip {
        return Err(AppError::field("dip_id", "The DIP ID of a participant cannot change.").into());
    }
    Ok(Json(json!(
        Admin::new(&broker, &a).save_participant(form, false).await?
    )))
}

async fn channels(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Query(q): Query<ListParams>,
) -> ApiResult<Value> {
    platform_reader(&a)?;
    Ok(Json(json!(Admin::new(&broker, &a).channels(&q.into()).await?)))
}

async fn channel(State(broker): State<Broker>, ApiActor(a): ApiActor, Path(id): Path<String>) -> ApiResult<Value> {
    platform_reader(&a)?;
    Ok(Json(json!(Admin::new(&broker, &a).channel_definition(&id).await?)))
}

/// Body of `POST /api/v1/admin/channels`: a copy of a template channel, or a whole
/// definition.
#[derive(Deserialize)]
#[serde(untagged)]
enum NewChannel {
    FromTemplate { template: String, id: String, name: String },
    Definition(Box<Channel>),
}

async fn create_channel(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    json: Result<Json<NewChannel>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiFailure> {
    platform_admin(&a)?;
    let admin = Admin::new(&broker, &a);
    let row = match body(json)? {
        NewChannel::FromTemplate { template, id, name } => {
            admin.create_channel_from_template(&template, &id, &name).await?
        }
        NewChannel::Definition(channel) => admin.save_channel(*channel, true).await?,
    };
    Ok((StatusCode::CREATED, Json(json!(row))))
}

async fn update_channel(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Path(id): Path<String>,
    json: Result<Json<Channel>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Value> {
    platform_admin(&a)?;
    let channel = body(json)?;
    if channel.id != id {
        return Err(AppError::field("id", "The interface id of a channel cannot change.").into());
    }
    Ok(Json(json!(Admin::new(&broker, &a).save_channel(channel, false).await?)))
}

async fn endpoints(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Query(q): Query<ListParams>,
) -> ApiResult<Value> {
    platform_reader(&a)?;
    Ok(Json(json!(Admin::new(&broker, &a).endpoints(&q.into()).await?)))
}

async fn create_endpoint(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    json: Result<Json<EndpointForm>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiFailure> {
    platform_admin(&a)?;
    let row = Admin::new(&broker, &a)
        .save_endpoint(body(json)?, Saving::Create)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(row))))
}

/// Body of `PUT /api/v1/admin/endpoints/{dip_id}/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointChange {
    #[serde(default)]
    url: String,
    #[serde(default)]
    channels: Vec<String>,
}

async fn update_endpoint(
    State(broker): State<Broker>,
    ApiActor(a): ApiActor,
    Path((dip_id, name)): Path<(String, String)>,
    json: Result<Json<EndpointChange>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Value> {
    platform_admin(&a)?;
    let change = body(json)?;
    let form = EndpointForm {
        dip_id,
        name,
        url: change.url,
        channels: change.channels,
    };
    Ok(Json(json!(
        Admin::new(&broker, &a).save_endpoint(form, Saving::Change).await?
    )))
}

async fn audit(State(broker): State<Broker>, ApiActor(a): ApiActor, Query(q): Query<ListParams>) -> ApiResult<Value> {
    Ok(Json(json!(Admin::new(&broker, &a).audit_log(&q.into()).await?)))
}
