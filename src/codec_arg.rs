//! The `--codec` option of the client subcommands: forces a wire form whatever the endpoint's
//! scheme says.

use avp_proto::Codec;

/// A wire form named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    /// Binary AVP frames.
    Binary,
    /// The JSON text form.
    Json,
}

impl From<CodecArg> for Codec {
    fn from(c: CodecArg) -> Codec {
        match c {
            CodecArg::Binary => Codec::Binary,
            CodecArg::Json => Codec::Json,
        }
    }
}
