//! Constraint configuration trees, then a batch stepped with the set that was built.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| _core::fuzzing::fuzz_constraint_config(data));
