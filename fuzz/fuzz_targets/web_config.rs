//! The web-config YAML parser and the Authorization header parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| _core::fuzzing::fuzz_web_config(data));
