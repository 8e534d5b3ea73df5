//! The binary decoder: the input as a TCP byte stream, and as one UDP datagram.
#![no_main]

use avp_proto::{decode_datagram, Codec, Message};
use avpd_fuzz::{check_decoded, check_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_stream(Codec::Binary, data);

    let one_frame =
        data.len() >= 3 && usize::from(u16::from_be_bytes([data[0], data[1]])) == data.len();
    match decode_datagram(data) {
        Ok(frame) => {
            assert!(
                one_frame,
                "datagram accepted but it is not exactly one frame"
            );
            check_decoded(Message::parse(frame).into());
        }
        Err(_) => assert!(!one_frame, "one-frame datagram rejected"),
    }
});
