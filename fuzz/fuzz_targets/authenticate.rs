//! The authenticator path: reports checked against agent keys, by the fast paths and the
//! general path alike, and reports signed from the input accepted exactly when the replay rule
//! allows them, never once a byte of them is changed.
#![no_main]

use avp_proto::Codec;
use avpd_fuzz::auth::{check_signed, check_verified_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = match data.first() {
        Some(b) if b & 1 == 1 => Codec::Json,
        _ => Codec::Binary,
    };
    check_verified_stream(codec, data);
    check_signed(codec, data);
});
