//! An empty PostgreSQL database for a test: on the server `VLM_TEST_POSTGRES_URL` names, or in
//! a throwaway cluster started from the installed server binaries and stopped on drop.
//!
//! Neither available is a failure that says how to install the server, never a silent skip.
//! `initdb` and `postgres` refuse to run as root, so as root the binaries run as the `postgres`
//! system user (which the Debian package creates) through `runuser`.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::{AnyConnection, Connection, Executor};
use tempfile::TempDir;

const URL_VARIABLE: &str = "VLM_TEST_POSTGRES_URL";
const INSTALL_HINT: &str = "PostgreSQL tests need a server: install the server binaries \
     (apt-get install postgresql) so the tests can start a throwaway cluster, or set \
     VLM_TEST_POSTGRES_URL=postgres://USER@HOST:PORT/DB naming a server where USER may \
     create databases";
const DATABASE: &str = "vlm_runs_test";
const CLUSTER_USER: &str = "vlm";

/// An empty database, removed (with its cluster, if one was started) on drop.
pub struct TestDatabase {
    pub url: String,
    owner: Owner,
}

enum Owner {
    Cluster(Cluster),
    External { admin_url: String, name: String },
}

impl TestDatabase {
    /// Panics with installation advice when no server can be had.
    pub async fn create() -> TestDatabase {
        match std::env::var(URL_VARIABLE) {
            Ok(admin_url) if !admin_url.trim().is_empty() => on_external_server(admin_url).await,
            _ => in_throwaway_cluster(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.owner {
            Owner::Cluster(cluster) => cluster.stop(),
            Owner::External { admin_url, name } => drop_external(admin_url, name),
        }
    }
}

async fn on_external_server(admin_url: String) -> TestDatabase {
    sqlx::any::install_default_drivers();
    let name = format!("vlm_runs_test_{:016x}", rand::random::<u64>());
    let mut admin = AnyConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {URL_VARIABLE}: {error}"));
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
    let _ = admin.close().await;
    TestDatabase {
        url: with_database(&admin_url, &name),
        owner: Owner::External { admin_url, name },
    }
}

/// Drops an external test database from a thread of its own: drop cannot await.
fn drop_external(admin_url: &str, name: &str) {
    let admin_url = admin_url.to_owned();
    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let dropper = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let mut admin = AnyConnection::connect(&admin_url).await.ok()?;
            admin.execute(statement.as_str()).await.ok()?;
            admin.close().await.ok()
        })
    });
    let _ = dropper.join();
}

/// `postgres://user@host:port/db?opts` with `db` replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    format!(
        "{}/{database}{query}",
        &base[..authority_start.max(authority_end)]
    )
}

fn in_throwaway_cluster() -> TestDatabase {
    let bin = server_binaries().unwrap_or_else(|| panic!("{INSTALL_HINT}"));
    let mut last_error = String::new();
    // A free port can be taken between choosing and binding it: try a few.
    for _ in 0..3 {
        match Cluster::start(&bin) {
            Ok(cluster) => {
                return TestDatabase {
                    url: format!(
                        "postgres://{CLUSTER_USER}@127.0.0.1:{}/{DATABASE}",
                        cluster.port
                    ),
                    owner: Owner::Cluster(cluster),
                }
            }
            Err(error) => last_error = error,
        }
    }
    panic!(
        "cannot start a throwaway PostgreSQL cluster from {}: {last_error}",
        bin.display()
    );
}

/// The directory holding `initdb`, `pg_ctl` and `createdb`: from `PATH` (links followed, as
/// Debian's live in `/usr/lib/postgresql/N/bin`), else the newest `/usr/lib/postgresql/*/bin`.
fn server_binaries() -> Option<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "createdb"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .filter(|initdb| initdb.is_file())
            .filter_map(|initdb| fs::canonicalize(initdb).ok())
            .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
            .find(|dir| has_tools(dir))
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, bin)| has_tools(bin))
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

/// A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only.
struct Cluster {
    bin: PathBuf,
    root: TempDir,
    port: u16,
    as_postgres_user: bool,
}

impl Cluster {
    fn start(bin: &Path) -> Result<Cluster, String> {
        let as_postgres_user = current_uid()? == 0;
        let root = tempfile::Builder::new()
            .prefix("vlm-runs-pg-")
            .tempdir_in("/tmp")
            .map_err(|error| format!("temporary directory: {error}"))?;
        if as_postgres_user {
            let uid = user_id("-u")?;
            let gid = user_id("-g")?;
            chown(root.path(), Some(uid), Some(gid))
                .map_err(|error| format!("chown {} to postgres: {error}", root.path().display()))?;
        }
        let cluster = Cluster {
            bin: bin.to_path_buf(),
            root,
            port: free_port()?,
            as_postgres_user,
        };
        let data = cluster.data_dir();
        let log = cluster.root.path().join("server.log");
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                CLUSTER_USER,
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )?;
        let server_options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.port,
            cluster.root.path().display()
        );
        let started = cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log.to_string_lossy(),
                "-o",
                &server_options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if let Err(error) = started {
            let server_log = fs::read_to_string(&log).unwrap_or_default();
            cluster.stop();
            return Err(format!("{error}\nserver log:\n{server_log}"));
        }
        let port = cluster.port.to_string();
        cluster.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", CLUSTER_USER, DATABASE],
        )?;
        Ok(cluster)
    }

    fn data_dir(&self) -> String {
        self.root.path().join("data").to_string_lossy().into_owned()
    }

    /// Runs a server binary (as `postgres` when we are root), failing with its output.
    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, String> {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        // The postgres user may not be able to enter the directory the tests run in.
        command.args(args).current_dir(self.root.path());
        let output = command
            .output()
            .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{tool} {} failed ({}): {}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(output)
    }

    fn stop(&self) {
        let data = self.data_dir();
        if Path::new(&data).join("postmaster.pid").exists() {
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        }
    }
}

fn current_uid() -> Result<u32, String> {
    command_number("id", &["-u"])
}

/// The `postgres` user's uid (`-u`) or gid (`-g`).
fn user_id(which: &str) -> Result<u32, String> {
    command_number("id", &[which, "postgres"]).map_err(|error| {
        format!("running as root needs the `postgres` system user ({error}); {INSTALL_HINT}")
    })
}

fn command_number(program: &str, args: &[&str]) -> Result<u32, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("{program} {} printed no number", args.join(" ")))
}

pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|error| format!("no free port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("no free port: {error}"))
}

#[test]
fn database_in_url_is_replaced() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u@h:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}
