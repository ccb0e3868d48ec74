//! The `isospec` binary: a thin shell around the library's CLI.

fn main() {
    std::process::exit(isospec::main());
}
