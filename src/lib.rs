//! avpd: a collector node for the AVP resource-usage protocol.
//!
//! Layers, from the wire up: [`proto`] (codecs, no IO), [`endpoint`] (URLs shared by every
//! tool), and the programs: [`cli`] (`avpd serve`), [`agent`], [`term`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod client;
pub mod endpoint;
pub mod fleet;
pub mod net;
pub mod node;
pub mod proto;
pub mod sampler;
pub mod session;
pub mod term;
