//! The `ferry` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    ferry::cli::main()
}
