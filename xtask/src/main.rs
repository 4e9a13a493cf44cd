//! `cargo xtask`: the thin command-line front of the pipeline. It only parses and dispatches;
//! each task lives in its own module of the `xtask` library and the real logic in library crates.

fn main() -> std::process::ExitCode {
    xtask::main()
}
