//! The DIP web application: the portal (`app`, rendered on the server and hydrated in
//! the browser) and, on the server, its state, the request context of server functions,
//! and the router that serves it beside broker-core's participant API. Identity and
//! administration live in the `dip-admin` crate, reports and alarms in `dip-reporting`;
//! the `dip` binary (`src/bin/dip/`) runs it all.
// The view types of the larger pages nest deeper than the default limit of 128.
#![recursion_limit = "256"]

pub mod app;
#[cfg(feature = "ssr")]
pub mod ctx;
#[cfg(feature = "ssr")]
pub mod form_errors;
#[cfg(feature = "ssr")]
pub mod router;
#[cfg(feature = "ssr")]
pub mod state;

/// Entry point of the browser bundle: takes over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
