//! The portal: a Leptos application rendered on the server (every page and form works
//! without JavaScript) and hydrated in the browser.

pub mod admin;
pub mod alarms;
pub mod auth;
pub mod ops;
pub mod reports;
pub mod sender;
pub mod trail;
pub mod ui;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use dip_admin::types::{Actor, AppError, PortalRole};

/// The HTML document around the application; `hydrate` adds the scripts that load the
/// browser bundle (left out when the bundle was not built: the pages work without it).
pub fn shell(options: LeptosOptions, hydrate: bool) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="stylesheet" href="/style/dip.css"/>
                <link rel="icon" href="data:,"/>
                {hydrate.then(|| view! { <HydrationScripts options/> })}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Sets a strict Content-Security-Policy on the page: scripts only with this response's
/// nonce (Leptos puts it on its inline scripts) and what they load, the wasm bundle
/// compiled, everything else from this site only, no framing.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&policy) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The routes. Every route renders completely on the server before it is sent (so the
/// status code, e.g. 403, is right and the page is whole without JavaScript).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let me = Resource::new(|| (), |_| auth::whoami());
    provide_context(me);
    // Tells browser tests (and curious people) that the bundle took over.
    #[cfg(feature = "hydrate")]
    Effect::new(|_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title formatter=|page: String| format!("{page} · DIP")/>
        <Router>
            <a class="skip" href="#main">"Skip to content"</a>
            <Header/>
            <main id="main" tabindex="-1">
                <Routes fallback=|| view! { <ui::NotFound/> }>
                    <Route path=path!("/") view=auth::Home ssr=SsrMode::Async/>
                    <Route path=path!("/sign-in") view=auth::SignInPage ssr=SsrMode::Async/>
                    <Route path=path!("/account") view=auth::AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users") view=admin::UsersPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users/:id") view=admin::UserPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/participants") view=admin::ParticipantsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/participants/:dip") view=admin::ParticipantPage ssr=SsrMode::Async/>
                    <Route path=path!("/channels") view=admin::ChannelsPage ssr=SsrMode::Async/>
                    <Route path=path!("/channels/:id") view=admin::ChannelPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/endpoints") view=admin::EndpointsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/certificates") view=admin::CertificatesPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/audit") view=admin::AuditPage ssr=SsrMode::Async/>
                    <Route path=path!("/messages") view=trail::MessagesPage ssr=SsrMode::Async/>
                    <Route path=path!("/messages/:id") view=trail::MessagePage ssr=SsrMode::Async/>
                    <Route path=path!("/workflows/:id") view=trail::WorkflowPage ssr=SsrMode::Async/>
                    <Route path=path!("/mpans/:mpan") view=trail::MpanPage ssr=SsrMode::Async/>
                    <Route path=path!("/reports") view=reports::ReportsPage ssr=SsrMode::Async/>
                    <Route path=path!("/reports/senders") view=sender::SenderReportPage ssr=SsrMode::Async/>
                    <Route path=path!("/alarms") view=alarms::AlarmsPage ssr=SsrMode::Async/>
                    <Route path=path!("/ops/queues") view=ops::QueuesPage ssr=SsrMode::Async/>
                    <Route path=path!("/ops/dead-letters") view=ops::DeadLettersPage ssr=SsrMode::Async/>
                    <Route path=path!("/replays") view=ops::ReplaysPage ssr=SsrMode::Async/>
                    <Route path=path!("/replays/:id") view=ops::ReplayPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

/// The signed-in user, as loaded once per page.
pub fn use_me() -> Resource<Result<Option<Actor>, AppError>> {
    expect_context()
}

#[component]
fn Header() -> impl IntoView {
    let me = use_me();
    view! {
        <header class="top">
            <A href="/" attr:class="brand">"DIP"</A>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(Some(actor)) => view! { <Nav actor/> }.into_any(),
                        _ => view! { <nav aria-label="Main"><A href="/sign-in">"Sign in"</A></nav> }.into_any(),
                    }
                })}
            </Suspense>
        </header>
    }
}

#[component]
fn Nav(actor: Actor) -> impl IntoView {
    let platform = actor.reads_platform();
    let users = actor.sees_users();
    let audit = platform || actor.has(PortalRole::UserAdmin) || actor.has(PortalRole::Auditor);
    let messages = actor.reads_messages();
    let who = match &actor.dip_id {
        Some(d) => format!("{} ({d})", actor.display_name),
        None => format!("{} (operator)", actor.display_name),
    };
    let sign_out = <auth::SignOut as leptos::server_fn::ServerFn>::PATH;
    view! {
        <nav aria-label="Main">
            <A href="/">"Home"</A>
            {users.then(|| view! { <A href="/admin/users">"Users"</A> })}
            {platform.then(|| view! {
                <A href="/admin/participants">"Participants"</A>
                <A href="/admin/endpoints">"Endpoints"</A>
                <A href="/admin/certificates">"Certificates"</A>
            })}
            {messages.then(|| view! {
                <A href="/messages">"Messages"</A>
                <A href="/ops/queues">"Operations"</A>
            })}
            <A href="/channels">"Channels"</A>
            <A href="/reports">"Reports"</A>
            <A href="/alarms">"Alarms"</A>
            {audit.then(|| view! { <A href="/admin/audit">"Audit log"</A> })}
        </nav>
        <div class="who">
            <A href="/account">{who}</A>
            <form method="post" action=sign_out>
                <button type="submit" class="link">"Sign out"</button>
            </form>
        </div>
    }
}
