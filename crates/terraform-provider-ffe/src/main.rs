//! terraform-provider-ffe: the tfplugin6 server. Logging goes to `PLUGIN_LOG_FILE` when set
//! (tf-provider's own subscriber); nothing secret is ever logged.
mod provider;
mod resources;
mod schema;
mod values;

fn main() -> anyhow::Result<()> {
    // tf-provider appends a Rust backtrace to every diagnostic when backtraces are enabled in the
    // environment; operators need the message, not our stack. Set before any thread starts.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(tf_provider::serve("ffe", provider::FfeProvider::default()))
}
