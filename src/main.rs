//! The `lookout` binary: everything it does is in [`lookout::cli`].

fn main() -> std::process::ExitCode {
    lookout::cli::main()
}
