//! `isospec temp-instance DIR`: a throwaway server exactly as `run
//! --temp-instance DIR` starts it, kept running for other programs (the
//! Python package's pytest plugin, which needs one server for a whole test
//! session).  Prints one JSON line with its conninfo once it accepts
//! connections, and stops it when its standard input closes (so it never
//! outlives the program that started it) or on SIGINT/SIGTERM/SIGHUP.

use super::TempSetupArgs;
use crate::environment::Environment;
use crate::exit::Exit;
use crate::report::console;
use crate::server::TempInstance;
use clap::Args;
use nix::sys::signal::{kill, SigSet, Signal};
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TempInstanceArgs {
    /// Directory of the instance (data/ and log/ are replaced).
    pub dir: PathBuf,
    #[command(flatten)]
    pub setup: TempSetupArgs,
}

/// libpq's quoting of a conninfo value.
fn quote(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '\'', '\\', '\t', '\n']) {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub fn main(a: TempInstanceArgs, env: &Environment) -> Exit {
    let opts = match a.setup.options(a.dir, env) {
        Ok(o) => o,
        Err(e) => {
            console::note(format_args!("isospec: error: {e}"));
            return Exit::Error;
        }
    };
    // Signals are taken by sigwait below; children get an empty mask from
    // std's spawn, so the server handles its own as usual.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        console::note(format_args!("isospec: error: could not block signals: {e}"));
        return Exit::Error;
    }
    let mut inst = match TempInstance::start(&opts) {
        Ok(i) => i,
        Err(e) => {
            console::note(format_args!("isospec: error: {e}"));
            return Exit::Error;
        }
    };
    if let Some((note, _, _)) = &inst.relocated {
        console::note(format_args!("isospec: {note}"));
    }
    let host = inst.socket_dir.display().to_string();
    let line = serde_json::json!({
        "conninfo": format!("host={} port={} user={}", quote(&host), inst.port, quote(&inst.superuser)),
        "host": host,
        "port": inst.port,
        "user": inst.superuser,
        "data_dir": inst.data_dir,
        "log_file": inst.log_file,
        "pid": inst.pid(),
    });
    if !console::outln_flushed(line) {
        inst.stop();
        return Exit::Error;
    }
    // End of standard input (the starting program closed it or died)
    // counts as SIGTERM; the thread inherits the blocked mask, so the
    // process-directed signal reaches sigwait.
    std::thread::spawn(|| {
        let mut sink = [0u8; 512];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = kill(nix::unistd::getpid(), Signal::SIGTERM);
    });
    let _ = signals.wait();
    inst.stop();
    Exit::Success
}

#[cfg(test)]
mod tests {
    #[test]
    fn conninfo_values_are_quoted_as_libpq_reads_them() {
        assert_eq!(super::quote("/tmp/isospec-x"), "/tmp/isospec-x");
        assert_eq!(super::quote("a b"), "'a b'");
        assert_eq!(super::quote("it's"), "'it\\'s'");
        assert_eq!(super::quote(""), "''");
    }
}
