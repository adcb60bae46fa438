//! The DIP web application: the portal (`app`, rendered on the server and hydrated in
//! the browser) and, on the server, its state, sessions, admin actions and REST API
//! (`portal`). The `dip` binary mounts it beside broker-core's participant API.

pub mod app;
#[cfg(feature = "ssr")]
pub mod portal;

/// Entry point of the browser bundle: takes over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
