//! Compiling a tenant's component in a child process: the compiler's memory is the child's, capped by an
//! address-space limit, and a compilation past its deadline is killed, so neither a shape the preflight missed nor a
//! slow compile can take the operator's memory or hold a compile slot. The child is the operator's own binary
//! (`perf-operator policy compile-worker`, hidden); it reads the component on stdin and writes wasmtime's serialized
//! artifact on stdout, which the parent loads.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::{Error, Result};

/// Exit code of a worker whose compiler refused the component (the message is on stderr).
const EXIT_REFUSED: u8 = 3;
/// Exit code of a worker that could not set itself up (its limits, the engine): the host's fault.
const EXIT_SETUP: u8 = 4;
/// Most of the worker's stderr read back: a message, and the peak memory line.
const MAX_STDERR: u64 = 16 << 10;
/// Prefix of the worker's last stderr line: its peak resident memory.
const PEAK_LINE: &str = "peak-rss-kib ";
/// How often the parent looks at a running worker.
const POLL: Duration = Duration::from_millis(5);

/// How to start a worker: a program and its arguments before the worker's own (`--memory-bytes` ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileWorker {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Address space the worker may map beyond what it maps to start.
    pub memory_bytes: u64,
}

impl CompileWorker {
    /// The running binary as its own worker, through `policy compile-worker`.
    pub fn this_binary(memory_bytes: u64) -> std::io::Result<Self> {
        let args = ["policy", "compile-worker"].map(OsString::from).to_vec();
        Ok(Self { program: std::env::current_exe()?, args, memory_bytes })
    }
}

/// The worker's options.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct WorkerArgs {
    /// Address space the worker may add to what it maps to start: set on itself before reading anything.
    #[arg(long)]
    pub memory_bytes: u64,
    /// CPU-time limit (seconds), a backstop should the parent be gone.
    #[arg(long)]
    pub cpu_seconds: u64,
    /// Most bytes read from stdin.
    #[arg(long)]
    pub max_input: u64,
}

/// What a worker compilation gave: the component and the worker's peak resident memory.
pub struct Compiled {
    pub component: Component,
    pub peak_rss_bytes: Option<u64>,
}

/// The worker's side: limits first, then read, compile, write. Returns the process's exit code.
pub fn serve(args: &WorkerArgs) -> ExitCode {
    let engine = match crate::host::engine() {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    // The limit is on top of what the process maps to start (its binary, libraries, stacks), which differs between
    // a debug and a release build: what the compilation may add is the same in both.
    let Some(base) = status_kib("VmSize:") else {
        eprintln!("reading the worker's own address space from /proc/self/status");
        return ExitCode::from(EXIT_SETUP);
    };
    let address_space = (base << 10).saturating_add(args.memory_bytes);
    if let Err(e) = limits(address_space, args.cpu_seconds) {
        eprintln!("setting the worker's limits: {e}");
        return ExitCode::from(EXIT_SETUP);
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().take(args.max_input).read_to_end(&mut bytes) {
        eprintln!("reading the component: {e}");
        return ExitCode::from(EXIT_SETUP);
    }
    let code = match engine.precompile_component(&bytes) {
        Ok(artifact) => match std::io::stdout().lock().write_all(&artifact) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("writing the artifact: {e}");
                ExitCode::from(EXIT_SETUP)
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(EXIT_REFUSED)
        }
    };
    if let Some(kib) = status_kib("VmHWM:") {
        eprintln!("\n{PEAK_LINE}{kib}");
    }
    code
}

/// This process's address-space and CPU-time limits.
fn limits(address_space: u64, cpu_seconds: u64) -> std::io::Result<()> {
    // The resource's type differs between glibc and musl (the image's static build): inferred from setrlimit.
    let set = |resource, value: u64| {
        let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
        if unsafe { libc::setrlimit(resource, &limit) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    };
    set(libc::RLIMIT_AS, address_space)?;
    set(libc::RLIMIT_CPU, cpu_seconds)
}

/// A `kB` line of this process's `/proc/self/status` (`VmHWM:` its peak resident set, `VmSize:` its address space).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The parent's side: compiles `bytes` in a worker, killed at `deadline`.
pub(crate) fn compile(
    worker: &CompileWorker,
    engine: &Engine,
    sha256: &str,
    bytes: &[u8],
    deadline: Instant,
) -> Result<Compiled> {
    let internal = |what: &str, e: std::io::Error| Error::Internal(format!("policy compile worker: {what}: {e}"));
    let left = deadline.saturating_duration_since(Instant::now());
    let mut child = Command::new(&worker.program)
        .args(&worker.args)
        .arg("--memory-bytes")
        .arg(worker.memory_bytes.to_string())
        .arg("--cpu-seconds")
        .arg((left.as_secs() + 2).to_string())
        .arg("--max-input")
        .arg(bytes.len().to_string())
        // One malloc arena: the address-space limit then measures the heap, not per-thread reservations.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| internal("starting it", e))?;
    // The worker cannot write more than it could hold: a longer answer is not read.
    let (artifact, stderr) = match exchange(&mut child, bytes, worker.memory_bytes) {
        Ok(out) => out,
        Err(e) => {
            kill(&mut child);
            return Err(internal("talking to it", e));
        }
    };
    let timeout = || Error::CompileTimeout {
        sha256: sha256.to_string(),
        detail: format!(
            "compiling it took longer than {:?} (a policy should compile in well under a second); the compilation \
             was stopped and is tried again later",
            worker_deadline(left)
        ),
    };
    let Some(status) = wait(&mut child, deadline) else {
        kill(&mut child);
        return Err(timeout());
    };
    if status.signal() == Some(libc::SIGXCPU) {
        return Err(timeout());
    }
    let artifact = artifact.join().map_err(|_| Error::Internal("the worker's stdout reader panicked".into()))?;
    let stderr = stderr.join().map_err(|_| Error::Internal("the worker's stderr reader panicked".into()))?;
    let (message, peak_kib) = split_peak(&String::from_utf8_lossy(&stderr));
    let peak_rss_bytes = peak_kib.map(|k| k.saturating_mul(1024));
    outcome(status, message, worker.memory_bytes, sha256)?;
    // SAFETY: the artifact was written by this binary's own worker, with this engine's configuration, from the
    // component just checked; wasmtime refuses an artifact of another version or configuration. A compiler subverted
    // by the component could as well have run in this process: the worker adds no trust that compiling here lacks.
    let component = unsafe { Component::deserialize(engine, &artifact) }
        .map_err(|e| Error::Internal(format!("loading the worker's compiled component: {e:#}")))?;
    Ok(Compiled { component, peak_rss_bytes })
}

/// The deadline as a message gives it: whole seconds once above one.
fn worker_deadline(left: Duration) -> Duration {
    if left >= Duration::from_secs(1) { Duration::from_secs(left.as_secs_f64().round() as u64) } else { left }
}

type Reader = std::thread::JoinHandle<Vec<u8>>;

/// Writes the component to the worker's stdin and starts readers for its stdout and stderr (so a full pipe never
/// stalls it).
fn exchange(child: &mut Child, bytes: &[u8], max_artifact: u64) -> std::io::Result<(Reader, Reader)> {
    let missing = || std::io::Error::other("a pipe was not set up");
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stderr = child.stderr.take().ok_or_else(missing)?;
    let out = std::thread::Builder::new().name("policy-worker-out".into()).spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout.take(max_artifact).read_to_end(&mut buffer);
        buffer
    })?;
    let err = std::thread::Builder::new().name("policy-worker-err".into()).spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr.take(MAX_STDERR).read_to_end(&mut buffer);
        buffer
    })?;
    let mut stdin = child.stdin.take().ok_or_else(missing)?;
    // The worker reads all of its input before it compiles, so this never waits on its output; dropping stdin is
    // its end of input.
    stdin.write_all(bytes)?;
    drop(stdin);
    Ok((out, err))
}

/// The worker's status, or None once `deadline` has passed.
fn wait(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            _ => return None,
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The message part of the worker's stderr, and its peak memory line.
fn split_peak(stderr: &str) -> (String, Option<u64>) {
    let mut peak = None;
    let mut lines = Vec::new();
    for line in stderr.lines() {
        match line.strip_prefix(PEAK_LINE) {
            Some(kib) => peak = kib.trim().parse().ok(),
            None if !line.trim().is_empty() => lines.push(line),
            None => {}
        }
    }
    (lines.join("\n"), peak)
}

/// What the worker's exit says: fine, the component's fault (remembered), or the host's.
fn outcome(status: ExitStatus, message: String, memory_bytes: u64, sha256: &str) -> Result<()> {
    let load = |detail: String| Error::Load { sha256: sha256.to_string(), detail: crate::check::clean(&detail, 2048) };
    let out_of_memory = message.contains("memory allocation of") || message.contains("out of memory");
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) if code == i32::from(EXIT_REFUSED) => Err(load(message)),
        (Some(code), _) if code == i32::from(EXIT_SETUP) => Err(Error::Internal(format!(
            "policy compile worker could not start: {}",
            crate::check::clean(&message, 512)
        ))),
        _ if out_of_memory => Err(load(format!(
            "compiling it needs more than the {} MiB a compilation may use; a policy needs a small fraction of that",
            memory_bytes >> 20
        ))),
        (code, signal) => Err(load(format!(
            "the compiler stopped ({}): {}",
            code.map_or_else(|| format!("signal {}", signal.unwrap_or_default()), |c| format!("exit code {c}")),
            message
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn category(raw: i32, stderr: &str) -> String {
        match outcome(ExitStatus::from_raw(raw), stderr.to_string(), 256 << 20, "d") {
            Ok(()) => "ok".into(),
            Err(e) => format!("{}: {e}", e.category()),
        }
    }

    #[test]
    fn the_workers_exit_says_whose_failure_it_was() {
        // Raw wait statuses: an exit code is shifted by 8, a signal is the low bits.
        let exit = |code: i32| code << 8;
        let cases = [
            (exit(0), "", "ok"),
            (exit(i32::from(EXIT_REFUSED)), "failed to parse WebAssembly module", "load: "),
            (exit(i32::from(EXIT_SETUP)), "setting the worker's limits: EPERM", "internal: "),
            (libc::SIGABRT, "memory allocation of 4096 bytes failed", "load: "),
            (exit(101), "panicked: out of memory", "load: "),
            (libc::SIGSEGV, "", "load: "),
        ];
        for (raw, stderr, expected) in cases {
            let got = category(raw, stderr);
            assert!(got.starts_with(expected), "{raw} {stderr:?}: {got}");
        }
        assert!(category(libc::SIGABRT, "memory allocation of 1 bytes failed").contains("more than the 256 MiB"));
        assert!(category(libc::SIGSEGV, "").contains("the compiler stopped (signal 11)"));
    }

    #[test]
    fn the_peak_line_is_read_apart_from_the_message() {
        assert_eq!(split_peak("bad magic\n\npeak-rss-kib 2048\n"), ("bad magic".to_string(), Some(2048)));
        assert_eq!(split_peak(""), (String::new(), None));
        assert_eq!(split_peak("peak-rss-kib x"), (String::new(), None));
    }
}
