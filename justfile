# The everyday commands. `just` lists them.

default:
    @just --list

# Run every test (the same command CI runs).
test:
    cargo test --workspace

# Lint: formatting, clippy and the API docs' links, warnings are errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Format the code.
fmt:
    cargo fmt --all

# Run the benchmarks under bench/ (they install ninja and hyperfine with apt-get when missing).
bench:
    bench/plan.sh
    bench/scheduler.sh
    bench/git.sh

# Run the built-in demo: a sample repository, five shell-agent workstreams, real worktrees and merges.
demo:
    cargo run --release -- demo
