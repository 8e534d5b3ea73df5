//! What the store needs in place before it stores anything: a connection to the configured
//! servers, the stream of reports (created, or checked and updated) and the bucket of latest
//! reports.

use crate::subject::SUBJECTS;
use crate::{Auth, StoreConfig, StoreError, StoreStatus};
use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pause before the stream and the bucket are set up again after a refusal.
const SETUP_RETRY: Duration = Duration::from_millis(500);

/// Connects to the configured servers; `status` (when given) follows the connection.
pub(crate) async fn connect_client(
    config: &StoreConfig,
    status: Option<Arc<Mutex<StoreStatus>>>,
) -> Result<async_nats::Client, StoreError> {
    let failed = |reason: String| StoreError::Connect {
        servers: config.servers.clone(),
        reason,
    };
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("avpd {}", config.collector))
        .connection_timeout(config.connect_timeout)
        .max_reconnects(None)
        .event_callback(move |event| {
            let status = status.clone();
            async move {
                let connected = match event {
                    async_nats::Event::Connected => true,
                    async_nats::Event::Disconnected => false,
                    other => {
                        tracing::debug!("store: {other}");
                        return;
                    }
                };
                let Some(status) = status else { return };
                if connected {
                    tracing::info!("store: connected");
                } else {
                    tracing::warn!("store: disconnected; reports wait in the store buffer");
                }
                status.lock().unwrap_or_else(|e| e.into_inner()).connected = connected;
            }
        });
    options = match &config.auth {
        Auth::None => options,
        Auth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        Auth::Token(t) => options.token(t.clone()),
        Auth::Creds(path) => options
            .credentials_file(path)
            .await
            .map_err(|e| failed(format!("credentials file {}: {e}", path.display())))?,
    };
    if let Some(tls) = &config.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &tls.client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let servers: Vec<async_nats::ServerAddr> = config
        .servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| failed(format!("{e}")))?;
    let client = tokio::time::timeout(config.connect_timeout, options.connect(servers))
        .await
        .map_err(|_| failed(format!("no answer within {:?}", config.connect_timeout)))?
        .map_err(|e| failed(e.to_string()))?;
    Ok(client)
}

/// The stream configuration avpd asks for.
fn stream_config(config: &StoreConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![SUBJECTS.into()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_age: config.max_age,
        max_bytes: i64::try_from(config.max_bytes).unwrap_or(i64::MAX),
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        allow_direct: true,
        description: Some("avpd: every accepted report".into()),
        ..Default::default()
    }
}

/// The stream and the bucket. A refusal is asked again every [`SETUP_RETRY`] until
/// `config.connect_timeout` has passed, then returned: JetStream's cluster may still be
/// electing its leaders (a node that starts with its cluster), or its answer may have come
/// late. A stream that cannot hold avpd's reports, or that the server has no room for, fails
/// at once.
pub(crate) async fn ensure_stream_and_bucket(
    js: &Context,
    config: &StoreConfig,
) -> Result<(stream::Stream, kv::Store), StoreError> {
    let deadline = Instant::now() + config.connect_timeout;
    loop {
        let attempt = async {
            let stream = ensure_stream(js, config).await?;
            Ok((stream, ensure_bucket(js, config).await?))
        };
        match attempt.await {
            Err(e) if may_pass_later(&e) && Instant::now() + SETUP_RETRY < deadline => {
                tracing::warn!("store: {e}; trying again");
                tokio::time::sleep(SETUP_RETRY).await;
            }
            done => return done,
        }
    }
}

/// True when a setup that failed with `e` may pass if made again.
fn may_pass_later(e: &StoreError) -> bool {
    matches!(e, StoreError::Setup { reason, .. } if !reason.contains(INSUFFICIENT_STORAGE))
}

/// The stream of reports: created, or checked for what avpd needs and updated to the
/// configured limits (keeping what the operator added).
async fn ensure_stream(js: &Context, config: &StoreConfig) -> Result<stream::Stream, StoreError> {
    let wanted = stream_config(config);
    match js.get_stream(&config.stream).await {
        Ok(mut existing) => {
            let found = existing
                .info()
                .await
                .map_err(|e| StoreError::Setup {
                    what: format!("read the stream {}", config.stream),
                    reason: e.to_string(),
                })?
                .config
                .clone();
            check_compatible(&config.stream, &found, &wanted)?;
            js.update_stream(&stream::Config {
                // Keep what the operator added (more subjects, a description, placement).
                subjects: found.subjects.clone(),
                description: found.description.clone().or(wanted.description.clone()),
                ..wanted
            })
            .await
            .map_err(|e| stream_setup_error("update", config, &e))?;
            Ok(existing)
        }
        Err(_) => js
            .create_stream(wanted)
            .await
            .map_err(|e| stream_setup_error("create", config, &e)),
    }
}

/// JetStream's error code for a stream whose size limit is more than the server has room for.
const INSUFFICIENT_STORAGE: &str = "error code 10047";

/// Why creating or updating (`what`) the stream failed, with what to do when the server has
/// less room than `--store-max-bytes` asks for.
fn stream_setup_error(what: &str, config: &StoreConfig, e: &dyn std::fmt::Display) -> StoreError {
    let mut reason = e.to_string();
    if reason.contains(INSUFFICIENT_STORAGE) {
        reason.push_str(&format!(
            "; the server has less JetStream storage left than --store-max-bytes ({}) asks \
             for: lower --store-max-bytes, or give the server more room (free disk under its \
             store directory, or a larger max_file_store)",
            avp_units::format_size(config.max_bytes)
        ));
    }
    StoreError::Setup {
        what: format!("{what} the stream {}", config.stream),
        reason,
    }
}

/// Fails, naming the setting, when an existing stream cannot hold avpd's reports the way avpd
/// reads them.
fn check_compatible(
    name: &str,
    found: &stream::Config,
    wanted: &stream::Config,
) -> Result<(), StoreError> {
    let incompatible = |setting, needs: String, found: String| {
        Err(StoreError::Incompatible {
            name: format!("stream {name}"),
            setting,
            needs,
            found,
        })
    };
    if !found.subjects.iter().any(|s| s == SUBJECTS) {
        return incompatible(
            "subjects",
            format!("[{SUBJECTS}]"),
            format!("{:?}", found.subjects),
        );
    }
    if found.storage != wanted.storage {
        return incompatible("storage", "file".into(), format!("{:?}", found.storage));
    }
    if found.retention != wanted.retention {
        return incompatible(
            "retention",
            "limits".into(),
            format!("{:?}", found.retention),
        );
    }
    if found.max_messages_per_subject > 0 {
        return incompatible(
            "max_msgs_per_subject",
            "unlimited (-1)".into(),
            found.max_messages_per_subject.to_string(),
        );
    }
    if found.no_ack {
        return incompatible("no_ack", "false".into(), "true".into());
    }
    Ok(())
}

/// The bucket of latest reports, created or updated.
async fn ensure_bucket(js: &Context, config: &StoreConfig) -> Result<kv::Store, StoreError> {
    let wanted = kv::Config {
        bucket: config.latest_bucket.clone(),
        description: "avpd: the latest report of every node".into(),
        history: 1,
        max_age: config.max_age,
        storage: StorageType::File,
        num_replicas: config.replicas,
        ..Default::default()
    };
    js.create_or_update_key_value(wanted)
        .await
        .map_err(|e| StoreError::Setup {
            what: format!("create the bucket {}", config.latest_bucket),
            reason: e.to_string(),
        })
}
