//! avpd: a collector node for the AVP resource-usage protocol.
//!
//! Layers, from the wire up: [`proto`] (codecs, no IO).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod endpoint;
pub mod proto;
