//! Generates the gRPC code from `proto/innkeep/v1/*.proto` with `protox`, a protobuf
//! compiler in Rust, so a build needs crates only: no system `protoc`.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("proto"))
        .unwrap_or_else(|| std::path::PathBuf::from("../proto"));
    let file = root.join("innkeep/v1/innkeep.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = match protox::compile([&file], [&root]) {
        Ok(d) => d,
        Err(e) => panic!("compiling {}: {e}", file.display()),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_transport(false)
        .compile_fds(descriptors)
    {
        panic!("generating code from {}: {e}", file.display());
    }
}
