//! Raw bytes on one exporter connection (first byte: basic auth, safety listener).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| _core::fuzzing::fuzz_http_request(data));
