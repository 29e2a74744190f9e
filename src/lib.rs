//! Sentinel: identity and authorization authority for a fleet of backend services.
//!
//! One binary serving gRPC, gRPC-web and HTTP on one port, on an embedded SQLite store or on
//! PostgreSQL + Redis.

pub mod api;
pub mod app;
pub mod apps;
pub mod audit;
pub mod authz;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod csv_io;
pub mod cursor;
pub mod error;
pub mod http;
pub mod import;
pub mod login;
pub mod metrics;
pub mod model;
pub mod operator;
pub mod platform;
pub mod proto;
pub mod ratelimit;
pub mod server;
pub mod services;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod tenancy;
pub mod tokens;
pub mod users;

pub use app::{AppState, Application};
pub use config::Config;
