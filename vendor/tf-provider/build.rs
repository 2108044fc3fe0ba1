// ffe-ha: the only change to upstream tf-provider 0.2.2. Upstream runs the system `protoc`
// through tonic-build; protox parses the same .proto files in pure Rust, so building the
// provider needs no protoc on the machine. The generated code is the same tonic/prost output.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/plugin.proto", "proto/tfplugin6.5.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_build::configure()
        .build_client(false)
        .compile_fds(descriptors)?;
    Ok(())
}
