//! A throwaway PostgreSQL cluster for the tests of this process: `initdb`
//! into a temporary directory, `postgres` on a free loopback port, one fresh
//! database per test. The cluster dies with the test process.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Cluster {
    port: u16,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// Where the PostgreSQL server programs are: `CHARAKA_PG_BINDIR`, Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest first), or the PATH.
fn bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("CHARAKA_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("postgres").exists())
}

/// PostgreSQL refuses to run as root: run it as the `postgres` user then.
fn postgres_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, but there is no `postgres` user to run PostgreSQL as"
    );
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn as_user(cmd: &mut Command, user: Option<(u32, u32)>, die_with_parent: bool) {
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = user {
                if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if die_with_parent {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            }
            Ok(())
        });
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes clusters left behind by earlier runs that were killed.
fn remove_stale(tmp: &Path) {
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("charaka-pg-") {
            continue;
        }
        let pid_file = entry.path().join("data/postmaster.pid");
        let alive = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse::<i32>().ok())
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> Result<Cluster, String> {
    let bin = bindir().ok_or(
        "PostgreSQL server programs (initdb, postgres) were not found: install them \
         (Debian: apt-get install postgresql) or set CHARAKA_PG_BINDIR",
    )?;
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let dir = tmp.join(format!("charaka-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let user = postgres_user();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let data = dir.join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_user(&mut initdb, user, false);
    let out = initdb
        .output()
        .map_err(|e| format!("running initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let log = std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = user {
        let _ = std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid));
    }
    let mut postgres = Command::new(bin.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=400",
            "-c",
            "shared_buffers=128MB",
        ])
        .stdout(Stdio::null())
        .stderr(log);
    as_user(&mut postgres, user, true);
    // The parent-death signal fires when the spawning *thread* ends, so the
    // server is spawned from a thread that lives as long as the process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = postgres.spawn();
        let ok = child.is_ok();
        let _ = tx.send(child.map(|_| ()).map_err(|e| e.to_string()));
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv()
        .unwrap()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            return Ok(Cluster { port });
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
            return Err(format!("postgres did not become ready within 60 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A URL of a new, empty database; None when PostgreSQL tests are switched
/// off with CHARAKA_SKIP_POSTGRES=1 (never in CI).
pub async fn database() -> Option<String> {
    if std::env::var("CHARAKA_SKIP_POSTGRES").is_ok_and(|v| v == "1")
        && std::env::var("CI").is_err()
    {
        eprintln!("PostgreSQL test NOT RUN: CHARAKA_SKIP_POSTGRES=1");
        return None;
    }
    let cluster = tokio::task::spawn_blocking(|| {
        CLUSTER
            .get_or_init(start)
            .as_ref()
            .map(|c| c.port)
            .map_err(Clone::clone)
    })
    .await
    .unwrap();
    let port = match cluster {
        Ok(port) => port,
        Err(e) => panic!("cannot run the PostgreSQL tests: {e}"),
    };
    let name = format!("charaka_test_{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connecting to the test cluster");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    Some(format!("postgres://postgres@127.0.0.1:{port}/{name}"))
}
