//! Helpers for the tests of the `avpd` binary: start it and read its output, and speak the
//! protocol from a test thread (the shared kit in `avp-testkit`).
#![allow(dead_code)] // each test file uses its own subset

pub use avp_testkit::*;

/// Starts `avpd ARGS` with debug logging and piped stdin, stdout and stderr.
pub fn avpd(args: &[&str]) -> Program {
    Program::start(env!("CARGO_BIN_EXE_avpd"), args)
}

/// A running `avpd serve` and the URLs it bound.
pub struct NodeProc {
    /// The process.
    pub proc: Program,
    /// Its first data-plane URL.
    pub data: String,
    /// Its first management-plane URL, when it has one.
    pub admin: Option<String>,
}

/// Starts `avpd serve ARGS` and reads the bound URLs from its log: waits for the data plane,
/// and for the management plane unless `--no-admin` is among `args`.
pub fn serve(args: &[&str]) -> NodeProc {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let mut proc = avpd(&all);
    let want_admin = !args.contains(&"--no-admin");
    let (mut data, mut admin) = (None, None);
    while data.is_none() || (want_admin && admin.is_none()) {
        let (url, kind) = proc.stderr.wait_for("listening on", |l| {
            let rest = &l[l.find("listening on ")? + "listening on ".len()..];
            let (url, kind) = rest.split_once(' ')?;
            Some((url.to_string(), kind.to_string()))
        });
        match kind.as_str() {
            "(data)" if data.is_none() => data = Some(url),
            "(admin)" if admin.is_none() => admin = Some(url),
            _ => {}
        }
    }
    NodeProc {
        proc,
        data: data.unwrap(),
        admin,
    }
}

/// Starts `avpd serve` on ephemeral ports with a management plane that pushes every 100 ms,
/// with `extra` flags.
pub fn serve_with_admin(extra: &[&str]) -> NodeProc {
    let mut args = vec![
        "--listen",
        "tcp://127.0.0.1:0",
        "--admin",
        "tcp://127.0.0.1:0",
        "--report-interval",
        "100ms",
    ];
    args.extend_from_slice(extra);
    serve(&args)
}

/// [`serve_with_admin`] storing to the NATS servers `stores` (a 256 MiB stream) as collector
/// `id`, with `extra` flags.
pub fn storing_node(stores: &[String], id: &str, extra: &[&str]) -> NodeProc {
    let mut args = vec!["--store-max-bytes", "256MiB", "--collector-id", id];
    for store in stores {
        args.extend_from_slice(&["--store", store]);
    }
    args.extend_from_slice(extra);
    serve_with_admin(&args)
}

/// Runs avp-loadgen (its library) against the data plane at `url`: 400 full reports, two
/// connections (NODE_IDs `loadgen-00000` and `loadgen-00001`) of 8 in flight, signed with
/// `signer` when given; the run's figures.
pub fn loadgen_reports(
    url: &str,
    signer: Option<avp_proto::auth::Key>,
) -> avp_loadgen::stats::Stats {
    let cfg = avp_loadgen::run::RunConfig {
        connections: 2,
        pipeline: 8,
        requests: Some(400),
        timeout: std::time::Duration::from_secs(30),
        mix: avp_loadgen::mix::Mix::reports_only(),
        signer,
        ..avp_loadgen::run::RunConfig::new(url.parse().unwrap())
    };
    avp_loadgen::run::run(&cfg, &mut ()).unwrap().stats
}

/// The address after `marker` (`data tcp://`, `metrics http://`) in the node's start-up line
/// (`avpd 0.1.0 serving: data tcp://127.0.0.1:7700, metrics http://…`).
pub fn started_addr(line: &str, marker: &str) -> std::net::SocketAddr {
    let at = line
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {line}"));
    let rest = &line[at + marker.len()..];
    rest.split([',', ' ', '/']).next().unwrap().parse().unwrap()
}

/// The port of a `scheme://host:port` URL.
pub fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}
