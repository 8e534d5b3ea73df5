//! The JSON text decoder: the input as a text byte stream, and as one JSON body behind a
//! correct length header (so the fuzzer reaches the JSON parser without guessing the header).
#![no_main]

use avp_proto::{Codec, Status};
use avpd_fuzz::{check_decoded, check_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_stream(Codec::Json, data);

    if data.len() <= usize::from(u16::MAX) {
        let mut framed = format!("{}\n", data.len()).into_bytes();
        framed.extend_from_slice(data);
        match Codec::Json.decode(&framed) {
            Ok(Status::Complete((decoded, used))) => {
                assert_eq!(used, framed.len());
                check_decoded(decoded);
            }
            other => panic!("a well-framed body decoded as {other:?}"),
        }
    }
});
