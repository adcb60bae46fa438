//! # admin
//!
//! Identity and administration of the platform: who is signed in and what they may do.
//!
//! Always built (the browser bundle uses them): the [`types`] every page and service
//! shares ([`types::Actor`], [`types::PortalRole`], [`types::AppError`], list queries)
//! and the [`rows`] of the admin tables.
//!
//! With the `server` feature: accounts and sign-in ([`accounts`], argon2 bounded by
//! [`throttle`]), sessions in the store ([`sessions`]), the caller of an HTTP request as
//! an actor ([`caller`], generic over the application state, so this crate never sees
//! the web application's), the admin services one file per area ([`service`]) and the
//! admin REST API ([`rest`]).

pub mod rows;
pub mod types;

#[cfg(feature = "server")]
pub mod accounts;
#[cfg(feature = "server")]
pub mod caller;
#[cfg(feature = "server")]
mod error;
#[cfg(feature = "server")]
pub mod rest;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod sessions;
#[cfg(feature = "server")]
pub mod throttle;
