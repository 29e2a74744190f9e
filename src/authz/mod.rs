//! Authorization state changes and consistency tokens. Every write that changes who may do what
//! appends a [`Change`] to the changelog in the transaction of the change itself; its revision,
//! encoded as a consistency token, is what callers pass back to read their own writes.

pub mod check;
pub mod engine;
pub mod index;
pub mod lookup;
pub mod resources;
pub mod watch;

pub use crate::model::change::{self, Change};
