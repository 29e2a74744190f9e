//! The CSV import: any bytes either import or are refused naming the field; never INTERNAL.
//! Input: [flags][csv…] (flags bit 0: dry run).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sentinel::error::Error;
use sentinel_fuzz::harness;

fuzz_target!(init: sentinel_fuzz::init(), |data: &[u8]| {
    let [flags, csv @ ..] = data else {
        return;
    };
    let harness = harness();
    let store = harness.state.store.clone();
    let dry_run = flags & 1 == 1;
    let result = harness.runtime.block_on(sentinel::csv_io::import(
        store.as_ref(),
        &sentinel::audit::Actor::operator(),
        csv,
        dry_run,
    ));
    if let Err(err) = result {
        assert!(
            !matches!(err, Error::Internal | Error::Unavailable),
            "import failed inside: {err:?}"
        );
    }
});
