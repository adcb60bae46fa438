//! The admin REST API on its own router (no portal): who may call which route, with a
//! session or an API key, on both stores. Sessions come from the admin crate's own
//! `accounts::sign_in` behind a minimal sign-in route, as the portal's form uses it.

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use broker_core::catalogue::CatalogueData;
use broker_core::store::AuditFilter;
use broker_core::{Broker, BrokerConfig};
use dip_admin::accounts::{self, SessionPolicy};
use dip_admin::sessions::{COOKIE, DbSessions};
use dip_admin::types::PortalRole;
use dip_testkit::{Db, SUP1, SUP2, TestStore, both_stores};
use reqwest::Method;
use reqwest::header::{COOKIE as COOKIE_HEADER, SET_COOKIE};
use serde_json::{Value, json};
use tower_sessions::{Session, SessionManagerLayer};

const PASSWORD: &str = "correct horse battery";

#[derive(Clone)]
struct AdminState {
    broker: Broker,
    policy: SessionPolicy,
}

impl FromRef<AdminState> for Broker {
    fn from_ref(s: &AdminState) -> Broker {
        s.broker.clone()
    }
}

impl FromRef<AdminState> for SessionPolicy {
    fn from_ref(s: &AdminState) -> SessionPolicy {
        s.policy
    }
}

#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn sign_in(State(s): State<AdminState>, session: Session, Json(c): Json<Credentials>) -> StatusCode {
    match accounts::sign_in(s.broker.accounts(), &session, &c.username, &c.password).await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

/// The admin REST API served on 127.0.0.1 over a seeded store with one user per role.
struct AdminApi {
    base: String,
    db: TestStore,
    http: reqwest::Client,
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Session(&'a str),
    Key(&'a str),
    None,
}

impl AdminApi {
    async fn start(db: Db) -> Self {
        let db = TestStore::seeded(db).await;
        let users: &[(&str, Option<&str>, &[PortalRole])] = &[
            ("admin", None, &[PortalRole::PlatformAdmin]),
            ("op-auditor", None, &[PortalRole::Auditor]),
            ("op-analyst", None, &[PortalRole::Analyst]),
            ("sup1-admin", Some(SUP1), &[PortalRole::UserAdmin]),
            ("sup1-user", Some(SUP1), &[PortalRole::MessageUser]),
            ("sup1-analyst", Some(SUP1), &[PortalRole::Analyst]),
            ("sup1-auditor", Some(SUP1), &[PortalRole::Auditor]),
            ("sup2-user", Some(SUP2), &[PortalRole::MessageUser]),
        ];
        for (name, dip, roles) in users {
            assert!(
                accounts::ensure_user(db.store.as_ref(), name, name, *dip, roles, PASSWORD, false)
                    .await
                    .unwrap()
            );
        }
        let broker = Broker::start(db.store.clone(), BrokerConfig::default()).await.unwrap();
        let state = AdminState {
            broker,
            policy: SessionPolicy::default(),
        };
        let app = Router::new()
            .merge(dip_admin::rest::routes())
            .route("/test/sign-in", post(sign_in))
            .with_state(state)
            .layer(
                SessionManagerLayer::new(DbSessions(db.store.clone()))
                    .with_name(COOKIE)
                    .with_secure(false),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base,
            db,
            http: reqwest::Client::new(),
        }
    }

    /// Signs `username` in; returns the session cookie.
    async fn sign_in(&self, username: &str) -> String {
        let res = self
            .http
            .post(format!("{}/test/sign-in", self.base))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "sign-in of {username}");
        let cookie = res.headers()[SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    async fn call(&self, auth: Auth<'_>, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::Session(cookie) => req = req.header(COOKIE_HEADER, cookie),
            Auth::Key(k) => req = req.bearer_auth(k),
            Auth::None => {}
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn user_id(&self, username: &str) -> String {
        self.db.store.user_by_username(username).await.unwrap().unwrap().id
    }
}

/// One call of every admin route that reads or changes something, `user_id` the target.
fn admin_routes(user_id: &str) -> Vec<(Method, String, Option<Value>)> {
    let participant = json!({"dip_id": "1000000999", "mpid": "ZZZZ", "name": "New", "kind": "participant",
        "roles": ["SUP"], "active": true});
    let if031 = {
        let seed = CatalogueData::seed().unwrap();
        json!(seed.channels.iter().find(|c| c.id == "IF-031").unwrap())
    };
    vec![
        (Method::GET, "/api/v1/admin/participants".into(), None),
        (Method::POST, "/api/v1/admin/participants".into(), Some(participant)),
        (Method::GET, format!("/api/v1/admin/participants/{SUP2}"), None),
        (
            Method::PUT,
            format!("/api/v1/admin/participants/{SUP1}"),
            Some(
                json!({"dip_id": SUP1, "mpid": "AURA", "name": "x", "kind": "participant", "roles": ["SUP"], "active": true}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/admin/channels".into(),
            Some(json!({"template": "IF-031", "id": "IF-931", "name": "Copy"})),
        ),
        (Method::PUT, "/api/v1/admin/channels/IF-031".into(), Some(if031)),
        (Method::GET, "/api/v1/admin/endpoints".into(), None),
        (
            Method::POST,
            "/api/v1/admin/endpoints".into(),
            Some(json!({"dip_id": SUP1, "name": "extra"})),
        ),
        (
            Method::PUT,
            format!("/api/v1/admin/endpoints/{SUP1}/default"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/admin/users".into(),
            Some(
                json!({"username": "mallory", "display_name": "M", "roles": ["platform_admin"], "password": PASSWORD}),
            ),
        ),
        (
            Method::PUT,
            format!("/api/v1/admin/users/{user_id}"),
            Some(json!({"display_name": "x", "roles": ["auditor"]})),
        ),
        (Method::POST, format!("/api/v1/admin/users/{user_id}/disable"), None),
        (
            Method::POST,
            format!("/api/v1/admin/users/{user_id}/reset-password"),
            None,
        ),
    ]
}

async fn every_admin_route_is_refused_to_every_non_admin_role(db: Db) {
    let api = AdminApi::start(db).await;
    let target = api.user_id("op-analyst").await;
    for username in [
        "op-auditor",
        "op-analyst",
        "sup1-admin",
        "sup1-user",
        "sup1-analyst",
        "sup1-auditor",
    ] {
        let s = api.sign_in(username).await;
        for (method, path, body) in admin_routes(&target) {
            let (status, answer) = api.call(Auth::Session(&s), method.clone(), &path, body).await;
            if username == "op-auditor" && method == Method::GET {
                assert_eq!(status, 200, "{username} {method} {path}: {answer}");
            } else {
                assert!(
                    [403, 404].contains(&status),
                    "{username} {method} {path}: {status} {answer}"
                );
            }
        }
    }
    // A participant's API key gets nothing; without credentials, sign in first.
    let key = api.db.key(SUP1);
    for (method, path, body) in admin_routes(&target) {
        let refused = api.call(Auth::Key(&key), method.clone(), &path, body.clone()).await.0;
        assert_eq!(refused, 403, "{method} {path}");
        assert_eq!(
            api.call(Auth::None, method.clone(), &path, body).await.0,
            401,
            "{method} {path}"
        );
    }
    // Nothing changed, and nothing was recorded as done.
    let store = &api.db.store;
    assert!(store.user_by_username("mallory").await.unwrap().is_none());
    assert!(
        !store
            .participants()
            .await
            .unwrap()
            .iter()
            .any(|x| x.dip_id == "1000000999")
    );
    let filter = AuditFilter {
        limit: 10,
        ..Default::default()
    };
    let (entries, _) = store.audit_log(&filter).await.unwrap();
    assert!(entries.is_empty(), "{entries:?}");

    // The operator's API key and administrator may do all of it.
    let op = api.db.operator_key();
    for (method, path, body) in admin_routes(&target) {
        let (status, answer) = api.call(Auth::Key(&op), method.clone(), &path, body).await;
        assert!(
            (200..300).contains(&status) || status == 400,
            "{method} {path}: {status} {answer}"
        );
    }
    assert!(store.user_by_username("mallory").await.unwrap().is_some());
}

async fn a_participants_user_administrator_manages_only_their_own_users(db: Db) {
    let api = AdminApi::start(db).await;
    let ua = api.sign_in("sup1-admin").await;
    let (status, list) = api
        .call(Auth::Session(&ua), Method::GET, "/api/v1/admin/users", None)
        .await;
    assert_eq!(status, 200);
    let rows = list["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|u| u["dip_id"] == SUP1), "{list}");

    // Creates users of their participant only, and no operator roles.
    let new = |username: &str, dip: Option<&str>, role: &str| json!({"username": username, "display_name": username, "dip_id": dip, "roles": [role], "password": PASSWORD});
    let create = |body: Value| api.call(Auth::Session(&ua), Method::POST, "/api/v1/admin/users", Some(body));
    assert_eq!(create(new("sup1-new", Some(SUP1), "message_user")).await.0, 201);
    let (status, body) = create(new("sup1-boss", Some(SUP1), "platform_admin")).await;
    assert_eq!(
        (status, body["error"]["fields"]["roles"].is_string()),
        (400, true),
        "{body}"
    );
    assert_eq!(create(new("sup2-new", Some(SUP2), "message_user")).await.0, 403);
    // Another participant's user cannot be seen or changed.
    let other = api.user_id("sup2-user").await;
    let path = format!("/api/v1/admin/users/{other}");
    assert_eq!(api.call(Auth::Session(&ua), Method::GET, &path, None).await.0, 404);
    let path = format!("/api/v1/admin/users/{other}/disable");
    assert_eq!(api.call(Auth::Session(&ua), Method::POST, &path, None).await.0, 404);

    // Their audit view shows their own participant's actions only.
    let admin = api.sign_in("admin").await;
    let body = Some(new("op-new", None, "auditor"));
    assert_eq!(
        api.call(Auth::Session(&admin), Method::POST, "/api/v1/admin/users", body)
            .await
            .0,
        201
    );
    let (_, audit) = api
        .call(Auth::Session(&ua), Method::GET, "/api/v1/admin/audit", None)
        .await;
    let rows = audit["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{audit}");
    assert_eq!(
        (rows[0]["actor"].as_str(), rows[0]["target"].as_str()),
        (Some("sup1-admin"), Some("sup1-new"))
    );
    let (_, audit) = api
        .call(Auth::Session(&admin), Method::GET, "/api/v1/admin/audit", None)
        .await;
    assert_eq!(audit["total"], 2);
}

both_stores!(
    every_admin_route_is_refused_to_every_non_admin_role,
    a_participants_user_administrator_manages_only_their_own_users,
);
