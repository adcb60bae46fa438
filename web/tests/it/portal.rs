//! The portal over real HTTP against a real store: sign-in and sessions, throttling,
//! cross-site refusal, server-side authorisation of every admin route and page for every
//! role, row-level scoping, the audit log, and admin changes that apply to the next
//! message without a restart.

use std::sync::Arc;
use std::time::Duration;

use broker_core::security::signature::Signer;
use broker_core::store::Store;
use broker_core::{Broker, BrokerConfig};
use dip_admin::accounts::{self, SessionPolicy};
use dip_admin::types::PortalRole;
use dip_reporting::analytics::{Analytics, Sink};
use dip_testkit::{DCP, Db, LDSO_P, MS_KEY, REGS_N, SUP1, SUP2, TestStore, if031_from, openssl_identity, set};
use dip_web::state::AppState;
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

pub(crate) struct Portal {
    pub(crate) base: String,
    /// What browsers send as `Origin` (the base, or its https form when the portal
    /// believes it is behind TLS).
    pub(crate) origin: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) db: TestStore,
    pub(crate) http: reqwest::Client,
    /// The site root: empty, so pages are served without the browser bundle.
    _site: tempfile::TempDir,
}

/// A user and their session cookie.
pub(crate) struct Session {
    pub(crate) cookie: String,
}

impl Portal {
    async fn start() -> Self {
        Self::start_with(SessionPolicy::default(), false).await
    }

    async fn start_with(policy: SessionPolicy, tls_cookies: bool) -> Self {
        Self::start_on(Db::Sqlite, policy, tls_cookies).await
    }

    /// The portal on `db` (seeded with the demo directory and one user per role).
    pub(crate) async fn start_on(db: Db, policy: SessionPolicy, tls_cookies: bool) -> Self {
        let db = TestStore::seeded(db).await;
        let store = db.store.clone();
        let site = tempfile::tempdir().unwrap();
        let users: &[(&str, Option<&str>, &[PortalRole])] = &[
            ("admin", None, &[PortalRole::PlatformAdmin]),
            ("op-auditor", None, &[PortalRole::Auditor]),
            ("op-analyst", None, &[PortalRole::Analyst]),
            ("sup1-admin", Some(SUP1), &[PortalRole::UserAdmin]),
            ("sup1-user", Some(SUP1), &[PortalRole::MessageUser]),
            ("sup1-analyst", Some(SUP1), &[PortalRole::Analyst]),
            ("sup1-auditor", Some(SUP1), &[PortalRole::Auditor]),
            ("sup2-user", Some(SUP2), &[PortalRole::MessageUser]),
            ("ms-user", Some(MS_KEY), &[PortalRole::MessageUser]),
            ("dcp-user", Some(DCP), &[PortalRole::MessageUser]),
            ("ldso-user", Some(LDSO_P), &[PortalRole::MessageUser]),
        ];
        for (name, dip, roles) in users {
            assert!(
                accounts::ensure_user(store.as_ref(), name, name, *dip, roles, PASSWORD, false)
                    .await
                    .unwrap()
            );
        }
        // A platform signing identity, so that evidence bundles can be downloaded.
        let (cert, key) = openssl_identity("0000000000");
        let config = BrokerConfig {
            signer: Some(Arc::new(Signer::new(&cert, &key).unwrap())),
            ..Default::default()
        };
        let broker = Broker::start(store.clone(), config).await.unwrap();
        let analytics = Analytics::new(store.clone(), Sink::Embedded);
        let state = AppState::new(broker.clone(), analytics, site.path().join("site"), policy, tls_cookies);
        let app = dip_web::router::platform(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let origin = if tls_cookies {
            base.replace("http://", "https://")
        } else {
            base.clone()
        };
        Self {
            base,
            origin,
            store,
            db,
            // A request that hangs fails its test clearly instead of stalling the run.
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            _site: site,
        }
    }

    pub(crate) fn key(&self, dip_id: &str) -> String {
        self.db.key(dip_id)
    }

    pub(crate) fn operator_key(&self) -> String {
        self.db.operator_key()
    }

    /// Signs in as a browser form would; returns the response.
    pub(crate) async fn sign_in_response(
        &self,
        username: &str,
        password: &str,
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/fn/sign_in", self.base))
            .header(ACCEPT, "text/html")
            .header(ORIGIN, &self.origin)
            .header("referer", format!("{}/sign-in", self.base))
            .form(&[("username", username), ("password", password), ("next", "/admin/users")]);
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req.send().await.unwrap()
    }

    pub(crate) async fn sign_in(&self, username: &str) -> Session {
        let res = self.sign_in_response(username, PASSWORD, None).await;
        assert_eq!(res.status(), 302, "sign-in of {username}");
        assert_eq!(res.headers()["location"], "/admin/users");
        Session {
            cookie: session_cookie(&res).expect("session cookie"),
        }
    }

    /// A page as a browser navigation asks for it: status and body.
    pub(crate) async fn page(&self, s: Option<&Session>, path: &str) -> (u16, String, Option<String>) {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .header(ACCEPT, "text/html");
        if let Some(s) = s {
            req = req.header(COOKIE, &s.cookie);
        }
        let res = req.send().await.unwrap();
        let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (res.status().as_u16(), res.text().await.unwrap(), location)
    }

    /// A call of the admin REST API with a session or an API key.
    pub(crate) async fn api(
        &self,
        auth: Auth<'_>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::Session(s) => req = req.header(COOKIE, &s.cookie).header(ORIGIN, &self.origin),
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

    /// A server function called as the browser bundle calls it (JSON answer).
    pub(crate) async fn server_fn(&self, s: &Session, name: &str, form: &[(&str, &str)]) -> (u16, String) {
        let res = self
            .http
            .post(format!("{}/fn/{name}", self.base))
            .header(COOKIE, &s.cookie)
            .header(ORIGIN, &self.origin)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded(form))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A GET answered with text (a CSV export, say): status and body.
    pub(crate) async fn text(&self, auth: Auth<'_>, path: &str) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        match auth {
            Auth::Session(s) => req = req.header(COOKIE, &s.cookie),
            Auth::Key(k) => req = req.bearer_auth(k),
            Auth::None => {}
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    pub(crate) async fn user_id(&self, username: &str) -> String {
        self.store.user_by_username(username).await.unwrap().unwrap().id
    }
}

/// Who asks, in the visibility tests: a signed-in user, an API key, or nobody.
pub(crate) enum Viewer<'a> {
    User(&'a Session),
    Key(String),
    Nobody,
}

impl Viewer<'_> {
    pub(crate) fn auth(&self) -> Auth<'_> {
        match self {
            Self::User(s) => Auth::Session(s),
            Self::Key(k) => Auth::Key(k),
            Self::Nobody => Auth::None,
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    Session(&'a Session),
    Key(&'a str),
    None,
}

fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The whole `Set-Cookie` of the session cookie, attributes included.
fn set_cookie_header(res: &reqwest::Response) -> Option<&str> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("dip_session="))
}

/// `dip_session=…` from a response's Set-Cookie.
fn session_cookie(res: &reqwest::Response) -> Option<String> {
    set_cookie_header(res).map(|v| v.split(';').next().unwrap().to_owned())
}

/// The server function error a form post was redirected back with (`__err`, base64).
fn decode_error(res: &reqwest::Response) -> String {
    use base64::Engine;
    let location = res.headers()["location"].to_str().unwrap();
    let err = location.split("__err=").nth(1).unwrap().split('&').next().unwrap();
    let err = err.replace("%3D", "=").replace("%2D", "-").replace("%5F", "_");
    String::from_utf8(base64::engine::general_purpose::URL_SAFE.decode(err).unwrap()).unwrap()
}

use reqwest::Method;

#[tokio::test]
async fn signing_in_issues_a_fresh_session_id_and_signing_out_ends_it_on_the_server() {
    let p = Portal::start().await;
    let (status, _, location) = p.page(None, "/admin/users").await;
    assert_eq!((status, location.as_deref()), (302, Some("/sign-in?next=/admin/users")));

    let res = p.sign_in_response("admin", PASSWORD, None).await;
    let attrs = set_cookie_header(&res).unwrap().to_lowercase();
    assert!(attrs.contains("httponly") && attrs.contains("samesite=lax"), "{attrs}");
    assert!(!attrs.contains("secure"), "plain HTTP: {attrs}");
    let first = session_cookie(&res).unwrap();
    let s1 = Session { cookie: first.clone() };
    let (status, body, _) = p.page(Some(&s1), "/admin/users").await;
    assert_eq!(status, 200);
    assert!(body.contains("sup1-admin"));
    // Pages carry a nonce-based Content-Security-Policy matching their inline scripts.
    let res = p
        .http
        .get(format!("{}/admin/users", p.base))
        .header(ACCEPT, "text/html")
        .header(COOKIE, &s1.cookie)
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.matches("<script").count() > 0);
    assert_eq!(
        html.matches("<script").count(),
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        "{html}"
    );

    // Signing in again on the same session gives it a new id; the old id is dead.
    let res = p.sign_in_response("admin", PASSWORD, Some(&first)).await;
    let second = session_cookie(&res).unwrap();
    assert_ne!(first, second);
    assert_eq!(p.page(Some(&s1), "/admin/users").await.0, 302, "old id no longer valid");
    let s2 = Session { cookie: second };
    assert_eq!(p.page(Some(&s2), "/admin/users").await.0, 200);

    // Sign-out deletes the session in the store: replaying the cookie gets nothing.
    let res = p
        .http
        .post(format!("{}/fn/sign_out", p.base))
        .header(COOKIE, &s2.cookie)
        .header(ORIGIN, &p.base)
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(p.page(Some(&s2), "/admin/users").await.0, 302);
    assert_eq!(
        p.api(Auth::Session(&s2), Method::GET, "/api/v1/admin/users", None)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn cookies_are_secure_when_served_over_tls() {
    let p = Portal::start_with(SessionPolicy::default(), true).await;
    let res = p.sign_in_response("admin", PASSWORD, None).await;
    assert!(set_cookie_header(&res).unwrap().to_lowercase().contains("secure"));
}

#[tokio::test]
async fn wrong_passwords_are_refused_alike_and_then_throttled() {
    let p = Portal::start().await;
    let refused = |res: &reqwest::Response| res.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    for username in ["sup1-user", "nobody"] {
        let res = p.sign_in_response(username, "not the password", None).await;
        let location = refused(&res).unwrap();
        assert!(location.contains("__err="), "{location}");
        assert!(session_cookie(&res).is_none());
    }
    for _ in 0..4 {
        p.sign_in_response("sup1-user", "not the password", None).await;
        p.sign_in_response("nobody", "not the password", None).await;
    }
    // An unknown name is throttled alike: the answer does not tell which names exist.
    let res = p.sign_in_response("nobody", "not the password", None).await;
    assert!(decode_error(&res).contains("TooManyAttempts"));
    // Five failures: the next attempt must wait, even with the right password.
    let res = p.sign_in_response("sup1-user", PASSWORD, None).await;
    assert!(session_cookie(&res).is_none(), "locked");
    assert!(decode_error(&res).contains("TooManyAttempts"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(p.sign_in_response("sup1-user", PASSWORD, None).await.status(), 302);
    assert_eq!(
        p.store
            .user_by_username("sup1-user")
            .await
            .unwrap()
            .unwrap()
            .failed_sign_ins,
        0
    );
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let p = Portal::start().await;
    let res = p
        .http
        .post(format!("{}/fn/sign_in", p.base))
        .header(ORIGIN, "http://evil.example")
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let admin = p.sign_in("admin").await;
    let res = p
        .http
        .post(format!(
            "{}/api/v1/admin/users/{}/disable",
            p.base,
            p.user_id("sup1-user").await
        ))
        .header(COOKIE, &admin.cookie)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(!p.store.user_by_username("sup1-user").await.unwrap().unwrap().disabled);
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_stops_sign_in() {
    let p = Portal::start().await;
    let admin = p.sign_in("admin").await;
    let user = p.sign_in("sup1-user").await;
    assert_eq!(p.page(Some(&user), "/").await.0, 200);
    let id = p.user_id("sup1-user").await;
    let (status, body) = p
        .api(
            Auth::Session(&admin),
            Method::POST,
            &format!("/api/v1/admin/users/{id}/disable"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(p.page(Some(&user), "/").await.0, 302, "session ended");
    assert!(session_cookie(&p.sign_in_response("sup1-user", PASSWORD, None).await).is_none());
    p.api(
        Auth::Session(&admin),
        Method::POST,
        &format!("/api/v1/admin/users/{id}/enable"),
        None,
    )
    .await;
    p.sign_in("sup1-user").await;
}

/// Building a router (another portal starting in the same process) while pages render
/// never stalls a page: leptos suppresses resource loading process-wide while it lists a
/// router's routes, and a page whose resource first polled then waited forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_while_another_router_is_built() {
    let p = Portal::start().await;
    let s = p.sign_in("admin").await;
    let building = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let builder = {
        let (store, building) = (p.store.clone(), building.clone());
        let runtime = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let _context = runtime.enter();
            let broker = runtime
                .block_on(Broker::start(store.clone(), BrokerConfig::default()))
                .expect("broker");
            let mut built = 0;
            while building.load(std::sync::atomic::Ordering::Relaxed) {
                let state = AppState::new(
                    broker.clone(),
                    Analytics::new(store.clone(), Sink::Embedded),
                    std::path::PathBuf::from("no-site"),
                    SessionPolicy::default(),
                    false,
                );
                drop(dip_web::router::platform(state));
                built += 1;
            }
            built
        })
    };
    let fast = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..60 {
        let res = fast
            .get(format!("{}/", p.base))
            .header(ACCEPT, "text/html")
            .header(COOKIE, &s.cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("page {i} while routers were built: {e}"));
        assert_eq!(res.status(), 200);
        res.text().await.unwrap_or_else(|e| panic!("page {i} body: {e}"));
    }
    building.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(builder.join().unwrap() > 0, "routers were built meanwhile");
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout_and_after_the_absolute_limit() {
    let idle = Portal::start_with(
        SessionPolicy {
            idle: Duration::from_secs(2),
            absolute: Duration::from_secs(3600),
        },
        false,
    )
    .await;
    let s = idle.sign_in("admin").await;
    // Activity keeps it alive past the idle time…
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(idle.page(Some(&s), "/").await.0, 200);
    }
    // …and a pause longer than it ends it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(idle.page(Some(&s), "/").await.0, 302);

    let absolute = Portal::start_with(
        SessionPolicy {
            idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(2),
        },
        false,
    )
    .await;
    let s = absolute.sign_in("admin").await;
    assert_eq!(absolute.page(Some(&s), "/").await.0, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        absolute.page(Some(&s), "/").await.0,
        302,
        "busy or not, the session ends"
    );
}

/// Every admin REST route, with a body that would succeed for a platform administrator.
#[tokio::test]
async fn admin_pages_and_server_functions_are_refused_on_the_server() {
    let p = Portal::start().await;
    let user = p.sign_in("sup1-user").await;
    for path in [
        "/admin/users",
        "/admin/participants",
        "/admin/endpoints",
        "/admin/certificates",
        "/admin/audit",
    ] {
        let (status, body, _) = p.page(Some(&user), path).await;
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("You do not have access"), "{path}");
    }
    // Another participant's data is not found; their own is shown.
    assert_eq!(p.page(Some(&user), &format!("/admin/participants/{SUP2}")).await.0, 404);
    let (status, body, _) = p.page(Some(&user), "/").await;
    assert_eq!(status, 200);
    assert!(body.contains(SUP1) && !body.contains(SUP2));
    // Calling the server functions directly changes nothing either.
    let (status, answer) = p
        .server_fn(
            &user,
            "save_participant",
            &[
                ("create", "true"),
                ("dip_id", "1000000998"),
                ("mpid", "QQQQ"),
                ("name", "Q"),
                ("kind", "participant"),
                ("roles[SUP]", "SUP"),
                ("nominated_dcps", ""),
            ],
        )
        .await;
    assert!(answer.contains("Forbidden"), "{answer}");
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = p
        .server_fn(
            &user,
            "create_user",
            &[
                ("username", "eve"),
                ("display_name", "Eve"),
                ("email", ""),
                ("roles[platform_admin]", "platform_admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("Forbidden"), "{answer}");
    assert!(p.store.user_by_username("eve").await.unwrap().is_none());
}

/// An IF-031-shaped message from SUP1 on `channel`, targeted at `recipient`.
fn message(channel: &str, reference: &str, recipient: &str) -> Value {
    let mut it = if031_from(SUP1, reference, &[recipient]);
    set(&mut it, "/payload/CommonBlock/S0/interfaceID", json!(channel));
    it
}

impl Portal {
    async fn send(&self, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/api/v1/messages", self.base))
            .bearer_auth(self.key(SUP1))
            .json(body)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_channel_made_from_a_template_and_edited_applies_to_the_next_message() {
    let p = Portal::start().await;
    let admin = p.sign_in("admin").await;
    let (status, body) = p
        .api(
            Auth::Session(&admin),
            Method::POST,
            "/api/v1/admin/channels",
            Some(json!({"template": "IF-031", "id": "IF-931", "name": "Registration copy"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, definition) = p
        .api(
            Auth::Session(&admin),
            Method::GET,
            "/api/v1/admin/channels/IF-931",
            None,
        )
        .await;
    assert_eq!(definition["name"], "Registration copy");
    let template = broker_core::catalogue::CatalogueData::seed().unwrap();
    let original = template.channels.iter().find(|c| c.id == "IF-031").unwrap();
    assert_eq!(definition["recipient_roles"], json!(original.recipient_roles));

    // Bad edits are refused with the rule broken, and nothing changes.
    let mut bad = definition.clone();
    bad["recipient_roles"] = json!(["NOPE"]);
    let (status, body) = p
        .api(
            Auth::Session(&admin),
            Method::PUT,
            "/api/v1/admin/channels/IF-931",
            Some(bad),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("NOPE"), "{body}");

    // The copy routes like its template: to the Registration Service, not to a distributor.
    assert_eq!(p.send(&message("IF-931", "r1", REGS_N)).await.0, 202);
    let (status, body) = p.send(&message("IF-931", "r2", LDSO_P)).await;
    assert!((400..500).contains(&status), "{status} {body}");

    // The distributor becomes a recipient role: the very next message may go to it,
    // with no restart and the template channel untouched.
    let mut edited = definition.clone();
    edited["recipient_roles"] = json!(["REGS", "LDSO"]);
    let (status, body) = p
        .api(
            Auth::Session(&admin),
            Method::PUT,
            "/api/v1/admin/channels/IF-931",
            Some(edited),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = p.send(&message("IF-931", "r3", LDSO_P)).await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = p.send(&message("IF-031", "r4", LDSO_P)).await;
    assert!((400..500).contains(&status), "the template keeps its rules");

    let (audit, _) = p
        .store
        .audit_log(&broker_core::store::AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["channel.update", "channel.create"]);
    assert!(audit.iter().all(|e| e.actor == "admin"));
    assert!(audit[0].detail.contains("LDSO"), "{}", audit[0].detail);
}

#[tokio::test]
async fn a_reset_password_must_be_replaced_before_anything_else() {
    let p = Portal::start().await;
    let admin = p.sign_in("admin").await;
    let before = p.sign_in("sup1-user").await;
    let id = p.user_id("sup1-user").await;
    let (status, body) = p
        .api(
            Auth::Session(&admin),
            Method::POST,
            &format!("/api/v1/admin/users/{id}/reset-password"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let temporary = body["temporaryPassword"].as_str().unwrap().to_owned();
    assert_eq!(temporary.len(), 20);
    assert_eq!(
        p.page(Some(&before), "/").await.0,
        302,
        "the reset ended their sessions"
    );
    assert!(
        session_cookie(&p.sign_in_response("sup1-user", PASSWORD, None).await).is_none(),
        "old password gone"
    );

    let res = p.sign_in_response("sup1-user", &temporary, None).await;
    let s = Session {
        cookie: session_cookie(&res).expect("signed in"),
    };
    let (status, _, location) = p.page(Some(&s), "/").await;
    assert_eq!((status, location.as_deref()), (302, Some("/account")));
    assert_eq!(p.page(Some(&s), "/account").await.0, 200);
    let (status, body) = p.api(Auth::Session(&s), Method::GET, "/api/v1/admin/users", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("PASSWORD_CHANGE_REQUIRED"))
    );

    // A second session of the same user ends when the password is changed in the first.
    let other = Session {
        cookie: session_cookie(&p.sign_in_response("sup1-user", &temporary, None).await).unwrap(),
    };
    let (status, answer) = p
        .server_fn(
            &s,
            "change_password",
            &[("current", &temporary), ("new_password", "short"), ("repeat", "short")],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("12 characters"), "{answer}");
    let (status, answer) = p
        .server_fn(
            &s,
            "change_password",
            &[
                ("current", &temporary),
                ("new_password", "my own long phrase"),
                ("repeat", "my own long phrase"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(p.page(Some(&s), "/").await.0, 200);
    assert_eq!(p.page(Some(&other), "/").await.0, 302);
    let (_, audit) = p
        .api(
            Auth::Session(&admin),
            Method::GET,
            "/api/v1/admin/audit?action=user.",
            None,
        )
        .await;
    assert_eq!(audit["rows"][0]["action"], "user.reset_password");
    assert!(!audit.to_string().contains(&temporary), "no secret in the audit log");
}

#[tokio::test]
async fn the_endpoint_form_changes_an_endpoint_wherever_it_is_listed() {
    let p = Portal::start().await;
    let op = p.operator_key();
    const DCP: &str = "1000000090";
    for name in ["zz1", "zz2"] {
        let body = json!({"dip_id": DCP, "name": name});
        let (status, answer) = p
            .api(Auth::Key(&op), Method::POST, "/api/v1/admin/endpoints", Some(body))
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    assert!(
        p.store.endpoints().await.unwrap().len() > dip_admin::types::PAGE_SIZE,
        "beyond one page"
    );
    let admin = p.sign_in("admin").await;
    let (status, answer) = p
        .server_fn(
            &admin,
            "save_endpoint",
            &[
                ("dip_id", DCP),
                ("name", "zz2"),
                ("url", "https://hooks.example/zz2"),
                ("channels", ""),
            ],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let saved = p.store.endpoints().await.unwrap();
    let zz2 = saved.iter().find(|e| e.id == format!("{DCP}/zz2")).unwrap();
    assert_eq!(zz2.url.as_deref(), Some("https://hooks.example/zz2"));
    // A new name through the same form creates the endpoint.
    let (status, answer) = p
        .server_fn(
            &admin,
            "save_endpoint",
            &[("dip_id", DCP), ("name", "zz3"), ("url", ""), ("channels", "")],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        p.store
            .endpoints()
            .await
            .unwrap()
            .iter()
            .any(|e| e.id == format!("{DCP}/zz3"))
    );
}

// Findings of the security probe of a live server (issue 12), one test each.

/// The value of query parameter `name` in a URL.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn sign_in_goes_on_only_to_a_path_of_this_site() {
    let p = Portal::start().await;
    for (next, expected) in [
        ("/admin/users?page=2", "/admin/users?page=2"),
        ("/\\evil.example/x", "/"),
        ("/\t/evil.example", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
    ] {
        let res = p
            .http
            .post(format!("{}/fn/sign_in", p.base))
            .header(ACCEPT, "text/html")
            .header(ORIGIN, &p.base)
            .form(&[("username", "admin"), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302, "{next:?}");
        assert_eq!(res.headers()["location"], expected, "{next:?}");
    }
}

#[tokio::test]
async fn a_form_error_is_shown_only_when_this_server_produced_it_for_this_session() {
    use base64::Engine;
    let p = Portal::start().await;
    let admin = p.sign_in("admin").await;
    // A crafted link: the endpoint form filled with an attacker's address and message.
    let crafted = json!({"Invalid": {
        "message": "Confirm the new webhook address and press Save",
        "fields": {},
        "values": {"url": "https://attacker.example/hook", "dip_id": SUP1, "name": "main"}
    }});
    let err = base64::engine::general_purpose::URL_SAFE.encode(crafted.to_string());
    let link = format!("/admin/endpoints?__path=/fn/save_endpoint&__err={err}");
    let (status, body, _) = p.page(Some(&admin), &link).await;
    assert_eq!(status, 200);
    assert!(!body.contains("attacker.example"), "crafted values shown");
    assert!(!body.contains("Confirm the new webhook"), "crafted message shown");

    // A real failure of the form, posted without JavaScript, comes back signed and shown.
    let res = p
        .http
        .post(format!("{}/fn/save_endpoint", p.base))
        .header(COOKIE, &admin.cookie)
        .header(ORIGIN, &p.base)
        .header(ACCEPT, "text/html")
        .header("referer", format!("{}/admin/endpoints", p.base))
        .form(&[
            ("dip_id", SUP1),
            ("name", "main"),
            ("url", "ftp://not-a-webhook.example/x"),
            ("channels", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(query_param(&location, "__sig").is_some(), "{location}");
    let path = location.strip_prefix(&p.base).unwrap();
    let (_, body, _) = p.page(Some(&admin), path).await;
    assert!(
        body.contains("not-a-webhook.example"),
        "the user's own value comes back"
    );
    // The same link in another session shows nothing of it.
    let other = p.sign_in("admin").await;
    let (_, body, _) = p.page(Some(&other), path).await;
    assert!(!body.contains("not-a-webhook.example"), "another session's error shown");
}

#[tokio::test]
async fn guesses_of_the_current_password_are_throttled_like_sign_ins() {
    let p = Portal::start().await;
    let user = p.sign_in("sup1-user").await;
    let change = |current: &'static str| {
        let user = &user;
        let p = &p;
        async move {
            p.server_fn(
                user,
                "change_password",
                &[
                    ("current", current),
                    ("new_password", "a brand new passphrase"),
                    ("repeat", "a brand new passphrase"),
                ],
            )
            .await
        }
    };
    for _ in 0..5 {
        let (status, body) = change("not my password").await;
        assert_eq!(status, 400, "{body}");
    }
    // Locked now, even for the right password.
    let (status, body) = change("correct horse battery").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("TooManyAttempts"), "{body}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = change("correct horse battery").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn sign_ins_from_one_address_are_limited() {
    let p = Portal::start().await;
    let mut statuses = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..25 {
        let res = p
            .sign_in_response(&format!("guess-{i}"), "not the password", None)
            .await;
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        statuses.push(query_param(&location, "__err").is_some_and(|e| {
            use base64::Engine;
            let e = base64::engine::general_purpose::URL_SAFE.decode(e).unwrap();
            String::from_utf8(e).unwrap().contains("from your network")
        }));
    }
    let refused = statuses.iter().filter(|r| **r).count();
    // One attempt comes back every 3 s; on a loaded machine 25 argon2 checks may take
    // that long.
    let refilled = usize::try_from(started.elapsed().as_secs() / 3).unwrap_or(usize::MAX);
    assert!(
        refused <= 5 && refused >= 5usize.saturating_sub(refilled),
        "the first 20 are checked, the rest refused ({refilled} refilled): {statuses:?}"
    );
    assert!(statuses[..20].iter().all(|r| !r));
}

#[tokio::test]
async fn participant_users_see_only_the_participants_they_deal_with() {
    let p = Portal::start().await;
    let user = p.sign_in("sup1-user").await;
    let names = |body: &str| {
        [SUP2, REGS_N, LDSO_P]
            .into_iter()
            .filter(|id| body.contains(id))
            .collect::<Vec<_>>()
    };
    let (status, body) = p.server_fn(&user, "load_alarms", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(SUP1));
    assert_eq!(names(&body), Vec::<&str>::new(), "{body}");
    let (status, body, _) = p.page(Some(&user), "/reports").await;
    assert_eq!(status, 200);
    assert_eq!(names(&body), Vec::<&str>::new());

    // Once SUP1 has sent a message to the Registration Service, it is named; nobody else.
    assert_eq!(p.send(&message("IF-031", "dealt-1", REGS_N)).await.0, 202);
    let mut pump = dip_reporting::pump::Pump::new(
        p.store.clone(),
        dip_reporting::analytics::Sink::Embedded,
        Default::default(),
    );
    while pump.step().await.unwrap() > 0 {}
    let (_, body) = p.server_fn(&user, "load_alarms", &[]).await;
    assert_eq!(names(&body), vec![REGS_N], "{body}");
    let (_, body, _) = p.page(Some(&user), "/reports").await;
    assert_eq!(names(&body), vec![REGS_N]);
    // Operator staff still see the whole directory.
    let admin = p.sign_in("admin").await;
    let (_, body) = p.server_fn(&admin, "load_alarms", &[]).await;
    assert_eq!(names(&body), vec![SUP2, REGS_N, LDSO_P]);
    // A participant's rule cannot name a participant it never dealt with.
    let (status, body) = p
        .server_fn(
            &user,
            "create_alarm",
            &[
                ("name", "probe"),
                ("kind", "dead_letters"),
                ("channel", ""),
                ("recipient", SUP2),
                ("threshold", "1"),
                ("window_minutes", "5"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn server_functions_answer_their_errors_status() {
    let p = Portal::start().await;
    // A wrong password, called as the browser bundle calls it.
    let res = p
        .http
        .post(format!("{}/fn/sign_in", p.base))
        .header(ORIGIN, &p.base)
        .header(ACCEPT, "application/json")
        .form(&[("username", "admin"), ("password", "not the password")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Missing and malformed arguments.
    let admin = p.sign_in("admin").await;
    let (status, body) = p.server_fn(&admin, "save_endpoint", &[("dip_id", SUP1)]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = p.server_fn(&admin, "change_password", &[]).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_is_not_cached() {
    let p = Portal::start().await;
    let admin = p.sign_in("admin").await;
    let key = p.key(SUP1);
    let requests = [
        p.http.get(format!("{}/api/v1/channels", p.base)).bearer_auth(&key),
        p.http.get(format!("{}/api/v1/messages/nope", p.base)).bearer_auth(&key),
        p.http.get(format!("{}/api/v1/no-such-route", p.base)),
        p.http.get(format!("{}/no-such-page", p.base)),
        p.http
            .get(format!("{}/admin/users", p.base))
            .header(COOKIE, &admin.cookie),
        p.http.get(format!("{}/style/dip.css", p.base)),
    ];
    for req in requests {
        let res = req.send().await.unwrap();
        let url = res.url().to_string();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(h["x-frame-options"], "DENY", "{url}");
        let cache = h["cache-control"].to_str().unwrap();
        if url.ends_with(".css") {
            assert_eq!(cache, "no-cache", "{url}");
        } else {
            assert_eq!(cache, "no-store", "{url}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_answer_a_not_found_page_or_the_apis_coded_404() {
    let p = Portal::start().await;
    let (status, body, _) = p.page(None, "/no-such-page").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("Page not found") && body.contains("/style/dip.css"),
        "{body}"
    );
    let (status, body) = p.api(Auth::None, Method::GET, "/api/v1/no-such-route", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["code"], "NOT_FOUND", "{body}");
}

#[tokio::test]
async fn a_page_that_needs_a_session_redirects_whatever_the_client_accepts() {
    let p = Portal::start().await;
    let res = p.http.get(format!("{}/admin/users", p.base)).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], "/sign-in?next=/admin/users");
}

#[tokio::test]
async fn a_nul_character_in_a_url_is_a_coded_400() {
    let p = Portal::start().await;
    let admin = p.sign_in("admin").await;
    for (auth, path) in [
        (Auth::Key(&p.key(SUP1)), "/api/v1/messages/a%00b"),
        (Auth::Session(&admin), "/api/v1/admin/users/x%00"),
        (Auth::Key(&p.key(SUP1)), "/api/v1/channels?q=%00"),
    ] {
        let (status, body) = p.api(auth, Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errors"][0]["code"], "NUL_CHARACTER", "{path}: {body}");
    }
}

#[tokio::test]
async fn a_nul_character_in_a_portal_form_or_document_is_a_400_naming_the_field() {
    let p = Portal::start().await;
    let admin = p.sign_in("admin").await;
    let (status, body) = p
        .server_fn(
            &admin,
            "save_endpoint",
            &[("dip_id", SUP1), ("name", "ma\0in"), ("url", ""), ("channels", "")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("NUL") && body.contains("name"), "{body}");
    let (status, body) = p
        .api(
            Auth::Session(&admin),
            Method::POST,
            "/api/v1/admin/participants",
            Some(json!({"dip_id": "1000000099", "name": "Nul\u{0}co"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_REQUEST", "{body}");
    assert!(body["error"]["fields"]["/name"].is_string(), "{body}");
    // Nothing was written, and a clean form still goes through.
    assert!(
        p.store
            .endpoints()
            .await
            .unwrap()
            .iter()
            .all(|e| !e.name.contains('\0'))
    );
    let (status, body) = p
        .server_fn(
            &admin,
            "save_endpoint",
            &[("dip_id", SUP1), ("name", "second"), ("url", ""), ("channels", "")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
