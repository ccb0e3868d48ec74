//! CPU placement of `-j` lanes on a server running on this machine.
//!
//! Why this exists: a spec is a chain of tiny round trips between the runner
//! and a backend.  When both CPUs are busy (which `-j` makes them), every
//! wake-up of a backend or of the runner on another CPU waits for that CPU,
//! and on virtual machines each cross-CPU wake-up is an expensive
//! inter-processor interrupt.  Measured on a 2-CPU machine with PostgreSQL
//! 15's suite: `prepared-transactions` (23,000 round trips) took 13.0–14.9 s
//! next to the other specs when its backends floated, and 9.0–11.0 s when it
//! ran on one CPU together with its backends while the others ran on the
//! other CPU.
//!
//! So under `-j` each lane (worker slot) runs on its own runner thread bound
//! to one CPU, and the backends of the spec it runs are bound to the same
//! CPU.  Lane 0, which gets the longest spec first (see `jobs`), has a CPU
//! to itself; the other lanes share the remaining CPUs.
//!
//! Binding another process is done only when it is certainly a backend of
//! the server we are connected to: the connection is a Unix socket, the
//! socket's lock file names the postmaster, and the process is a child of
//! that postmaster.  Where that or the permission (same OS user, or
//! CAP_SYS_NICE) is missing, nothing is bound and nothing else changes.

use std::path::Path;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::pgwire::ConnParams;

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The CPU of lane `slot` out of `cpus`: lane 0 alone on the first CPU, the
/// other lanes round-robin over the rest.  None with fewer than two CPUs.
pub fn lane_cpu(slot: usize, cpus: &[usize]) -> Option<usize> {
    match cpus.len() {
        0 | 1 => None,
        _ if slot == 0 => Some(cpus[0]),
        n => Some(cpus[1 + (slot - 1) % (n - 1)]),
    }
}

/// Whether binding lanes pays for a group of specs with these costs on
/// `ncpus` CPUs: when the longest spec is a large part of the work (at
/// least 1/(ncpus + 1) of it), the makespan is that spec's chain, and
/// giving it a CPU of its own is what shortens it.  When the work is
/// spread over many similar specs, the kernel balances floating lanes
/// better than a fixed placement does (PostgreSQL 15's 81-spec subset under
/// -j 3: 0.30-0.33x of isolationtester's time floating, 0.33-0.36x bound).
pub fn worth_binding(costs: &[u64], ncpus: usize) -> bool {
    // u128: estimates of specs with huge permutation counts saturate at u64::MAX.
    let total: u128 = costs.iter().map(|&c| u128::from(c)).sum();
    let longest = u128::from(costs.iter().copied().max().unwrap_or(0));
    ncpus >= 2 && total > 0 && longest * (ncpus as u128 + 1) >= total
}

/// Binds the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> nix::Result<()> {
    sched_setaffinity(Pid::from_raw(0), &cpu_set(cpu)?)
}

fn cpu_set(cpu: usize) -> nix::Result<CpuSet> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    Ok(set)
}

/// The pid of the postmaster behind a Unix-socket connection, from the
/// socket's lock file (`.s.PGSQL.PORT.lock`, first line), if that process
/// exists here.  None for TCP connections: the server may be elsewhere.
pub fn local_postmaster(params: &ConnParams) -> Option<i32> {
    let (dir, port) = params.unix_socket()?;
    let lock = dir.join(format!(".s.PGSQL.{port}.lock"));
    let text = std::fs::read_to_string(lock).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    (pid > 0 && Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}

/// The parent pid of `pid`, from /proc/PID/stat.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Binds each backend in `pids` to `cpu`, after checking it is a child of
/// `postmaster`.  Stops at the first one that is not, or cannot be bound.
pub fn pin_backends(postmaster: i32, pids: &[i32], cpu: usize) -> Result<(), String> {
    let set = cpu_set(cpu).map_err(|e| e.to_string())?;
    for &pid in pids {
        if parent_of(pid) != Some(postmaster) {
            return Err(format!(
                "process {pid} is not a backend of postmaster {postmaster}"
            ));
        }
        sched_setaffinity(Pid::from_raw(pid), &set)
            .map_err(|e| format!("cannot bind backend {pid} to CPU {cpu}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_leave_the_first_cpu_to_lane_zero() {
        assert_eq!(lane_cpu(0, &[]), None);
        assert_eq!(lane_cpu(3, &[5]), None);
        let two = [0, 1];
        let got: Vec<_> = (0..4).map(|s| lane_cpu(s, &two).unwrap()).collect();
        assert_eq!(got, [0, 1, 1, 1]);
        let four = [2, 3, 6, 7];
        let got: Vec<_> = (0..6).map(|s| lane_cpu(s, &four).unwrap()).collect();
        assert_eq!(got, [2, 3, 6, 7, 3, 6]);
    }

    #[test]
    fn binding_only_when_one_spec_dominates() {
        // PostgreSQL 15's complete suite: prepared-transactions is 10.3 s of 25.4.
        assert!(worth_binding(&[10_300, 5_000, 5_000, 5_100], 2));
        // Its 81-spec subset: the longest is 1.1 s of 6.5.
        let mut subset = vec![1_100, 600, 500];
        subset.extend([300; 14]);
        assert!(!worth_binding(&subset, 2));
        assert!(!worth_binding(&[10_000, 1], 1));
        assert!(!worth_binding(&[0, 0], 2));
        assert!(!worth_binding(&[], 2));
        // Saturated estimates do not overflow.
        assert!(worth_binding(&[u64::MAX, u64::MAX, 1], 2));
    }

    #[test]
    fn parent_and_allowed_cpus_of_this_process() {
        let me = std::process::id() as i32;
        assert_eq!(parent_of(me), Some(nix::unistd::getppid().as_raw()));
        assert!(!allowed_cpus().is_empty());
    }

    #[test]
    fn only_children_of_the_postmaster_are_bound() {
        let me = std::process::id() as i32;
        let ppid = nix::unistd::getppid().as_raw();
        let err = pin_backends(me, &[ppid], 0).unwrap_err();
        assert!(err.contains("not a backend"), "{err}");
    }

    #[test]
    fn no_postmaster_behind_tcp_or_a_missing_lock_file() {
        let mut p = ConnParams::local("/tmp".into(), 5432, "u", "d");
        p.targets[0].host = crate::pgwire::settings::Host::Tcp("localhost".into());
        assert_eq!(local_postmaster(&p), None);
        let dir = std::env::temp_dir().join(format!("isospec-aff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        p.targets[0].host = crate::pgwire::settings::Host::Unix(dir.clone());
        assert_eq!(local_postmaster(&p), None);
        std::fs::write(
            dir.join(".s.PGSQL.5432.lock"),
            format!("{}\n/data\n", std::process::id()),
        )
        .unwrap();
        assert_eq!(local_postmaster(&p), Some(std::process::id() as i32));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
