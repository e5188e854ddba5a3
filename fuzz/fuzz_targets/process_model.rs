//! Every env with options, seeds, autoreset modes, shields and actions from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| _core::fuzzing::fuzz_process_model(data));
