//! Latency histograms as text: HdrHistogram's V2 compressed form in base64, the encoding of
//! the histograms in HdrHistogram interval logs, so that every HdrHistogram implementation can
//! read the ones a JSON report carries. Values are nanoseconds.

use crate::stats::new_histogram;
use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A nanosecond latency histogram, V2 compressed and base64 encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(String);

impl EncodedHistogram {
    /// Encodes `h`.
    pub fn encode(h: &Histogram<u64>) -> Self {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .expect("a histogram always serializes into memory");
        EncodedHistogram(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The histogram, with the loadgen's bounds (1 ns to one hour, three significant digits)
    /// so that it adds to any other; the error says what is wrong with the text.
    pub fn decode(&self) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.0)
            .map_err(|e| format!("a histogram is not base64: {e}"))?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("a histogram does not decode: {e:?}"))?;
        let mut out = new_histogram();
        out.add(&h)
            .map_err(|e| format!("a histogram does not fit the loadgen's bounds: {e:?}"))?;
        Ok(out)
    }

    /// The base64 text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly_and_refuses_garbage() {
        let mut h = new_histogram();
        for v in [
            1u64,
            19_000,
            19_000,
            250_000,
            1_000_000_000,
            3_600_000_000_000,
        ] {
            h.record(v).unwrap();
        }
        let e = EncodedHistogram::encode(&h);
        assert!(
            e.as_str().starts_with("HISTF"),
            "V2 compressed: {}",
            e.as_str()
        );
        let back = e.decode().unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 6);
        assert!(EncodedHistogram("not base64!".into()).decode().is_err());
        assert!(EncodedHistogram("AAAA".into()).decode().is_err());
    }
}
