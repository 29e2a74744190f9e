//! Marks a test's assertion as the exercise of one documented error of the contract.
//! `tests/contract.rs` reads every `refused("Service/Rpc", Code::…, …)` call in the test files
//! and fails when an error code a proto comment documents for an RPC ("Errors: NOT_FOUND when
//! …") has none, so the documentation and the suite cannot drift apart.

use std::fmt::Debug;

use tonic::{Code, Status};

/// Asserts that `result`, the answer of `rpc` ("Service/Method"), is a `code` error, and
/// returns the status for further checks (its message, say).
#[track_caller]
pub fn refused<T: Debug>(rpc: &str, code: Code, result: Result<T, Status>) -> Status {
    match result {
        Ok(answer) => panic!("{rpc}: expected {code:?}, got an answer: {answer:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{rpc}: {status:?}");
            status
        }
    }
}
