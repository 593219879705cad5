//! Choosing a transport by configuration: the same pipeline code on the embedded log or on Kafka.

use std::str::FromStr;
use std::sync::Arc;

use super::{EmbeddedTransport, Transport, TransportError};
use crate::log::{DEFAULT_CAPACITY_BYTES, EmbeddedLog};

/// Which log a process runs its pipelines on. Parsed from `embedded` or
/// `kafka://HOST:PORT[,HOST:PORT…][?property=value&…]` (the `kafka` feature is needed for the latter), e.g. from a
/// `--transport` flag or `PBP_TRANSPORT`. Query properties are librdkafka settings for every client, such as
/// `session.timeout.ms=6000` (how soon a crashed group member's partitions move to the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// The in-process [`EmbeddedLog`], with this per-partition capacity.
    Embedded {
        /// Per-partition capacity in bytes of the topics it creates.
        capacity_bytes: usize,
    },
    /// A Kafka cluster reached through these bootstrap servers.
    Kafka {
        /// `bootstrap.servers`.
        brokers: String,
        /// Extra librdkafka properties, applied to every client after pbp's own.
        properties: Vec<(String, String)>,
    },
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self::Embedded { capacity_bytes: DEFAULT_CAPACITY_BYTES }
    }
}

impl FromStr for TransportConfig {
    type Err = TransportError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("embedded") {
            return Ok(Self::default());
        }
        let invalid = |why: &str| {
            TransportError::client(
                format!("transport {spec:?}"),
                format!("{why}; expected `embedded` or `kafka://HOST:PORT[,HOST:PORT...][?property=value&...]`"),
            )
        };
        let Some(rest) = spec.strip_prefix("kafka://") else { return Err(invalid("unknown scheme")) };
        let (brokers, query) = rest.split_once('?').unwrap_or((rest, ""));
        if brokers.is_empty() || !brokers.split(',').all(|b| b.trim().contains(':')) {
            return Err(invalid("brokers must be HOST:PORT"));
        }
        let mut properties = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() => properties.push((key.to_owned(), value.to_owned())),
                _ => return Err(invalid(&format!("property {pair:?} is not key=value"))),
            }
        }
        Ok(Self::Kafka { brokers: brokers.to_owned(), properties })
    }
}

impl TransportConfig {
    /// Builds the transport. Every call to an embedded configuration makes a new, empty log: build once per
    /// process and share the `Arc`.
    pub fn connect(&self) -> Result<Arc<dyn Transport>, TransportError> {
        match self {
            Self::Embedded { capacity_bytes } => {
                Ok(Arc::new(EmbeddedTransport::new(EmbeddedLog::new()).with_capacity_bytes(*capacity_bytes)))
            }
            #[cfg(feature = "kafka")]
            Self::Kafka { brokers, properties } => {
                let config = properties
                    .iter()
                    .fold(super::kafka::KafkaConfig::new(brokers.clone()), |config, (k, v)| config.set(k, v));
                Ok(Arc::new(super::kafka::KafkaTransport::connect(config)?))
            }
            #[cfg(not(feature = "kafka"))]
            Self::Kafka { .. } => {
                Err(TransportError::client("connecting to Kafka", "pbp-dataflow was built without its `kafka` feature"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_embedded_and_kafka() {
        assert_eq!("embedded".parse::<TransportConfig>().unwrap(), TransportConfig::default());
        assert_eq!(
            "kafka://127.0.0.1:9092,10.0.0.2:9092".parse::<TransportConfig>().unwrap(),
            TransportConfig::Kafka { brokers: "127.0.0.1:9092,10.0.0.2:9092".into(), properties: Vec::new() }
        );
        assert_eq!(
            "kafka://h:1?session.timeout.ms=6000&heartbeat.interval.ms=1000".parse::<TransportConfig>().unwrap(),
            TransportConfig::Kafka {
                brokers: "h:1".into(),
                properties: vec![
                    ("session.timeout.ms".into(), "6000".into()),
                    ("heartbeat.interval.ms".into(), "1000".into())
                ]
            }
        );
        for bad in ["", "kafka://", "kafka://nohost", "redis://x:1", "embeded", "kafka://h:1?novalue"] {
            assert!(bad.parse::<TransportConfig>().is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn embedded_connects() {
        let t = TransportConfig::default().connect().unwrap();
        assert_eq!(t.kind(), "embedded");
    }
}
